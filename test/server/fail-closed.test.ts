// When the revocation store cannot answer, Keyhole fails closed: data requests get 503
// revocation_unavailable, revoke calls get 503, readiness says not ready. The memory store
// cannot fail, so a store that fails on purpose stands in for an unreachable one.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { RevocationUnavailable, type RevocationStore } from '../../src/auth/revocation.ts';
import { ADMIN_TOKEN, auditFor, dataUrl, filesProviderYaml, keyholeWith } from '../helpers/keyhole.ts';

const root = mkdtempSync(join(tmpdir(), 'keyhole-failclosed-'));
writeFileSync(join(root, 'a.txt'), 'hello');

class BrokenStore implements RevocationStore {
  up = true;
  unexpected = false;
  isRevoked(): boolean {
    if (this.up) return false;
    throw this.unexpected ? new Error('socket hang up') : new RevocationUnavailable('store unreachable');
  }
  async revokeToken(): Promise<void> {
    if (!this.up) throw new RevocationUnavailable('store unreachable');
  }
  async revokeSubject(): Promise<void> {
    if (!this.up) throw new RevocationUnavailable('store unreachable');
  }
  async revokeSession(): Promise<void> {
    if (!this.up) throw new RevocationUnavailable('store unreachable');
  }
  isSessionRevoked(): boolean {
    if (this.up) return false;
    throw new RevocationUnavailable('store unreachable');
  }
  ready(): boolean {
    return this.up;
  }
  async close(): Promise<void> {}
}

t.test('revocation store down: fail closed everywhere', async (t) => {
  const store = new BrokenStore();
  const { k, token } = await keyholeWith(t, filesProviderYaml(root), ['local://files/'], { revocation: store });
  const read = () => k.get(dataUrl('local://files/a.txt'), { authorization: `Bearer ${token}` });
  t.equal((await read()).status, 200);

  store.up = false;
  const refused = await read();
  t.equal(refused.status, 503, 'a cached, valid token is still refused while revocation cannot be checked');
  t.equal(JSON.parse(refused.body.toString()).error, 'revocation_unavailable');
  t.match(await auditFor(k, refused.headers['x-request-id'] as string), { decision: 'error', reason: 'revocation_unavailable', status: 503 });
  store.unexpected = true;
  t.equal((await read()).status, 503, 'an unexpected store error fails closed too');
  t.ok(k.logs.some((l) => l.msg === 'revocation check failed'), 'and is logged');

  const revoke = await request(`${k.admin}/admin/revoke`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ sub: 'alice' }) });
  t.equal(revoke.statusCode, 503);
  t.equal(((await revoke.body.json()) as { error: string }).error, 'revocation_unavailable');
  const ready = await request(`${k.admin}/readyz`);
  t.equal(ready.statusCode, 503);
  t.same(await ready.body.json(), { ready: false, revocation: false, accepting: true });
  const metrics = await (await request(`${k.admin}/metrics`)).body.text();
  t.match(metrics, /keyhole_revocation_store_up 0\n/);

  store.up = true;
  store.unexpected = false;
  t.equal((await read()).status, 200, 'recovers when the store answers again');
});

t.test('presign route: auth, body validation, per-URI errors for kinds that cannot presign', async (t) => {
  const { k, token } = await keyholeWith(t, filesProviderYaml(root), ['local://files/']);
  const post = (body: unknown, auth = `Bearer ${token}`) =>
    k.get('/v1/presign', { authorization: auth, 'content-type': 'application/json' }, 'POST', typeof body === 'string' ? body : JSON.stringify(body));
  t.equal((await k.get('/v1/presign')).status, 405);
  t.equal(JSON.parse((await post({ uris: ['local://files/a.txt'] }, 'Bearer x.y.z')).body.toString()).error, 'token_malformed');
  for (const bad of [{}, { uris: [] }, { uris: [1] }, { uris: ['local://files/a.txt'], ttl: -1 }, '{nope']) {
    t.equal((await post(bad)).status, 400, `bad body ${JSON.stringify(bad)}`);
  }
  const res = await post({ uris: ['local://files/a.txt', 'local://other/x', 'local://files/../x', 's3://b/x'] });
  t.equal(res.status, 200);
  t.same(JSON.parse(res.body.toString()).results, [
    { uri: 'local://files/a.txt', error: 'no_provider' },
    { uri: 'local://other/x', error: 'no_provider' },
    { uri: 'local://files/../x', error: 'uri_traversal' },
    { uri: 's3://b/x', error: 'no_provider' },
  ]);
});
