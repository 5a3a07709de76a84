// Where tokens come from (Bearer, __Host- cookie, ?token=), that a query token never shows
// in a log line, scope vs uri claims, and org/project limits on providers.
import t from 'tap';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditFor, baseYaml, dataUrl, filesProviderYaml, startKeyhole } from '../helpers/keyhole.ts';
import { authenticate } from '../../src/server/authenticate.ts';

const root = mkdtempSync(join(tmpdir(), 'keyhole-auth-'));
for (const d of ['public', 'private', 'tenant']) mkdirSync(join(root, d));
writeFileSync(join(root, 'public', 'a.txt'), 'public a');
writeFileSync(join(root, 'public', 'b.txt'), 'public b');
writeFileSync(join(root, 'private', 'x.txt'), 'private');
writeFileSync(join(root, 'tenant', 't.txt'), 'tenant');

const yaml = (extraAuth = '') =>
  baseYaml(`${filesProviderYaml(root)}  - name: tenant
    kind: local
    match: local://tenant/
    root: ${join(root, 'tenant')}
    orgs: [acme]
  - name: project
    kind: local
    match: local://project/
    root: ${join(root, 'tenant')}
    orgs: [acme]
    projects: [p1]
`, { auth: extraAuth });

const errorOf = (b: Buffer) => JSON.parse(b.toString()).error as string;

t.test('token sources: Bearer, cookie, ?token= (never logged)', async (t) => {
  const k = await startKeyhole(yaml());
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['local://files/public/'] });
  const bearer = await k.get(dataUrl('local://files/public/a.txt'), { authorization: `Bearer ${token}` });
  t.equal(bearer.status, 200);
  t.match(await auditFor(k, bearer.headers['x-request-id'] as string), { tokenSource: 'header' });
  const query = await k.get(dataUrl('local://files/public/a.txt', token));
  t.equal(query.status, 200);
  t.equal(query.body.toString(), 'public a');
  t.match(await auditFor(k, query.headers['x-request-id'] as string), { tokenSource: 'query', uri: 'local://files/public/a.txt', sub: 'alice' });
  const badQuery = await k.get(dataUrl('local://files/public/a.txt', token.slice(0, -3)));
  t.equal(badQuery.status, 401);
  t.equal(badQuery.headers['www-authenticate'], 'Bearer realm="keyhole"');
  const twice = await k.get(`${dataUrl('local://files/public/a.txt', token)}&token=${token}`);
  t.equal(twice.status, 400, 'a repeated token parameter is ambiguous');
  const cookie = await k.get(dataUrl('local://files/public/a.txt'), { cookie: `__Host-keyhole=${token}` });
  t.equal(cookie.status, 200);
  // Bearer wins over the cookie: a stale cookie cannot shadow a fresh header.
  const both = await k.get(dataUrl('local://files/public/a.txt'), { authorization: `Bearer ${token}`, cookie: '__Host-keyhole=stale.stale.stale' });
  t.equal(both.status, 200);
  const logs = k.rawLogs();
  t.notOk(logs.includes(token), 'the token never appears in any log line');
  t.notOk(logs.includes(token.split('.')[2]!), 'nor its signature');
  t.notOk(logs.includes(token.slice(0, -3)), 'nor a refused token');
});

t.test('queryToken: false refuses ?token=', async (t) => {
  const k = await startKeyhole(yaml('queryToken: false'));
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['local://files/'] });
  const res = await k.get(dataUrl('local://files/public/a.txt', token));
  t.equal(res.status, 401);
  t.equal(errorOf(res.body), 'token_missing');
});

t.test('scope prefixes and the exact uri claim', async (t) => {
  const k = await startKeyhole(yaml());
  t.teardown(() => k.close());
  const scoped = await k.token({ scope: ['local://files/public/', 'LOCAL://FILES/private/x.txt'] });
  const get = (uri: string, token: string) => k.get(dataUrl(uri), { authorization: `Bearer ${token}` });
  t.equal((await get('local://files/public/b.txt', scoped)).status, 200);
  t.equal((await get('local://files/private/x.txt', scoped)).status, 200, 'scope entries are canonicalised (scheme case)');
  t.equal(errorOf((await get('local://files/private/y.txt', scoped)).body), 'scope_denied');
  const exact = await k.token({ uri: 'local://files/public/a.txt' });
  t.equal((await get('local://files/public/a.txt', exact)).status, 200);
  t.equal((await get('local://files/public/%61.txt', exact)).status, 200, 'same URI in another encoding');
  t.equal(errorOf((await get('local://files/public/b.txt', exact)).body), 'scope_denied');
  t.equal(errorOf((await get('local://files/public', exact)).body), 'scope_denied', 'the folder named as an object');
  t.equal(errorOf((await get('local://files/public/', exact)).body), 'uri_folder', 'a folder is no object: refused before any scope check');
});

t.test('org and project limits on providers', async (t) => {
  const k = await startKeyhole(yaml());
  t.teardown(() => k.close());
  const get = async (uri: string, req: { org?: string; project?: string }) => {
    const token = await k.token({ scope: ['local://tenant/', 'local://project/'], ...req });
    return k.get(dataUrl(uri), { authorization: `Bearer ${token}` });
  };
  t.equal((await get('local://tenant/t.txt', { org: 'acme' })).status, 200);
  const other = await get('local://tenant/t.txt', { org: 'globex' });
  t.equal(other.status, 403);
  t.equal(errorOf(other.body), 'org_denied');
  t.match(await auditFor(k, other.headers['x-request-id'] as string), { decision: 'deny', reason: 'org_denied', provider: 'tenant' });
  t.equal(errorOf((await get('local://tenant/t.txt', {})).body), 'org_denied', 'no org claim');
  t.equal((await get('local://project/t.txt', { org: 'acme', project: 'p1' })).status, 200);
  t.equal(errorOf((await get('local://project/t.txt', { org: 'acme', project: 'p2' })).body), 'org_denied');
  t.equal(errorOf((await get('local://project/t.txt', { org: 'acme' })).body), 'org_denied', 'no project claim');
});

t.test('a refused token carries what it claims, unverified: sub and jti, capped, never the token', async (t) => {
  const k = await startKeyhole(yaml());
  t.teardown(() => k.close());
  const rt = k.server.current;
  const good = await k.token({ sub: 'mallory', jti: 'j-1', scope: ['local://files/public/'] });
  const [head, body] = good.split('.');
  const forged = `${head}.${body}.${'A'.repeat(43)}`;
  const bad = await authenticate(rt, { authorization: `Bearer ${forged}` }, null);
  t.match(bad, { ok: false, reason: 'token_invalid', unverified: { sub: 'mallory', jti: 'j-1' } });
  t.notOk(JSON.stringify(bad).includes(forged), 'the token itself is not in the result');

  const long = await k.token({ sub: 'x'.repeat(1000), scope: ['local://files/public/'] });
  const tampered = `${long.split('.').slice(0, 2).join('.')}.${'B'.repeat(43)}`;
  const capped = await authenticate(rt, { authorization: `Bearer ${tampered}` }, null);
  t.equal(!capped.ok && capped.unverified?.sub?.length, 256, 'a long sub is capped at 256 characters');

  const garbage = await authenticate(rt, { authorization: 'Bearer not-a-jwt' }, null);
  t.match(garbage, { ok: false, reason: 'token_malformed' });
  t.equal(!garbage.ok && garbage.unverified, undefined, 'nothing readable, nothing claimed');

  const revokedToken = await k.token({ sub: 'bob', jti: 'j-2', scope: ['local://files/public/'] });
  await rt.revocation.revokeToken('j-2', Math.floor(Date.now() / 1000) + 600);
  t.match(await authenticate(rt, { authorization: `Bearer ${revokedToken}` }, null), { ok: false, reason: 'token_revoked', unverified: { sub: 'bob', jti: 'j-2' } });
});
