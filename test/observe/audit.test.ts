// One audit event per data request, with every field the issue names: time, request id,
// kind, sub, jti, org, provider, URI, decision and reason code, status, bytes, duration,
// client. "Who asked for what, and what happened" from every event: a refused token still
// names who it claims to be (marked unverified) and the URI it asked for.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signDevToken } from '../../src/auth/sign.ts';
import { ADMIN_TOKEN, auditFor, baseYaml, dataUrl, startKeyhole } from '../helpers/keyhole.ts';

const root = mkdtempSync(join(tmpdir(), 'keyhole-audit-'));
writeFileSync(join(root, 'a.txt'), 'hello audit');

t.test('audit events for allowed and refused requests', async (t) => {
  const k = await startKeyhole(
    baseYaml(`providers:
  - { name: files, kind: local, match: "local://files/", root: ${root}, orgs: [acme] }
`),
  );
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['local://files/'], org: 'acme', jti: 'jti-ok' });
  const before = Date.now();
  const ok = await k.get(dataUrl('local://files/a.txt'), { authorization: `Bearer ${token}` });
  const allowed = await auditFor(k, ok.headers['x-request-id'] as string);
  t.same(Object.keys(allowed).sort(), ['aborted', 'bytes', 'client', 'decision', 'id', 'jti', 'kind', 'ms', 'org', 'provider', 'reason', 'status', 'sub', 'tokenSource', 'uri'].sort());
  t.match(allowed, { kind: 'data', sub: 'alice', jti: 'jti-ok', org: 'acme', provider: 'files', uri: 'local://files/a.txt', decision: 'allow', reason: 'ok', status: 200, bytes: 11, aborted: false, client: '127.0.0.1', tokenSource: 'header' });
  t.type(allowed.ms, 'number');
  t.ok((allowed.ms as number) >= 0);
  const line = k.logs.find((l) => l.kind === 'audit' && l.audit?.id === allowed.id)!;
  t.ok(Date.parse(line.time as string) >= before - 1000, 'the log line carries the time');
  t.equal(line.level, 'info');

  const other = await k.token({ scope: ['local://files/'], org: 'globex' });
  const denied = await k.get(dataUrl('local://files/a.txt'), { authorization: `Bearer ${other}` });
  const deniedEvent = await auditFor(k, denied.headers['x-request-id'] as string);
  t.notOk('unverified' in deniedEvent, 'a verified token: no unverified mark');
  t.match(deniedEvent, { kind: 'data', sub: 'alice', org: 'globex', provider: 'files', uri: 'local://files/a.txt', decision: 'deny', reason: 'org_denied', status: 403, bytes: 0 });

  const anonymous = await k.get(dataUrl('local://files/a.txt'));
  t.match(await auditFor(k, anonymous.headers['x-request-id'] as string), { sub: undefined, jti: undefined, provider: undefined, uri: 'local://files/a.txt', decision: 'deny', reason: 'token_missing', status: 401, client: '127.0.0.1' });
  t.equal(k.audits().length, 3, 'exactly one event per request');
});

t.test('a refused token: who it claims to be (unverified), what it asked for', async (t) => {
  const k = await startKeyhole(baseYaml(`providers:\n  - { name: files, kind: local, match: "local://files/", root: ${root} }\n`));
  t.teardown(() => k.close());
  const ask = async (token: string, uri = 'local://files/a.txt') => {
    const res = await k.get(dataUrl(uri), { authorization: `Bearer ${token}` });
    return auditFor(k, res.headers['x-request-id'] as string);
  };
  const expired = await k.token({ sub: 'eve', jti: 'jti-expired', scope: ['local://files/'], iat: Math.floor(Date.now() / 1000) - 7200, ttlSeconds: 60 });
  t.match(await ask(expired), { kind: 'data', decision: 'deny', reason: 'token_expired', sub: 'eve', jti: 'jti-expired', unverified: true, uri: 'local://files/a.txt', client: '127.0.0.1' });

  const revoked = await k.token({ sub: 'mallory', jti: 'jti-revoked', scope: ['local://files/'] });
  const revoke = await k.get(`${k.admin}/admin/revoke`, { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, 'POST', JSON.stringify({ jti: 'jti-revoked' }));
  t.equal(revoke.status, 200);
  t.match(await ask(revoked, 'local://files/b%20c.txt'), { reason: 'token_revoked', sub: 'mallory', jti: 'jti-revoked', uri: 'local://files/b%20c.txt' });

  // Signed with a key Keyhole does not have: nothing in it can be trusted, but it is named.
  const forged = await signDevToken({ auth: { ...k.config.auth, keys: [{ kid: 'k1', algorithms: ['HS256'], secret: { reveal: () => 'another-secret-0123456789abcdef-012345' } } as never] } }, { sub: 'forger', jti: 'jti-forged' });
  t.match(await ask(forged), { reason: 'token_invalid', sub: 'forger', jti: 'jti-forged', unverified: true, uri: 'local://files/a.txt' });

  // A URI that does not parse is still named (redacted, cut short), never served.
  t.match(await ask(expired, 'local://files/../etc/passwd?token=s3cret'), { reason: 'token_expired', uri: 'local://files/../etc/passwd?token=[redacted]' });
  t.notOk(k.rawLogs().includes('s3cret'), 'the token in the URI is in no log line');
});

t.test('presign: an issued URL is its own kind of event, not a 0-byte download', async (t) => {
  const k = await startKeyhole(
    baseYaml(`providers:
  - name: signed
    kind: s3
    mode: presign
    match: s3://bucket2/
    endpoint: http://127.0.0.1:9
    pathStyle: true
    region: us-east-1
    credentials: { accessKeyId: AKIDEXAMPLE, secretAccessKey: "\${env:S3_SECRET}" }
    buckets: [{ name: bucket2 }]
`),
    { env: { S3_SECRET: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' } },
  );
  t.teardown(() => k.close());
  const token = await k.token({ sub: 'alice', jti: 'jti-presign', scope: ['s3://bucket2/a/'] });
  const post = (auth: string, body: unknown) => k.get('/v1/presign', { authorization: `Bearer ${auth}`, 'content-type': 'application/json' }, 'POST', JSON.stringify(body));
  const res = await post(token, { uris: ['s3://bucket2/a/x.jpg', 's3://bucket2/b/y.jpg'] });
  t.equal(res.status, 200);
  const id = res.headers['x-request-id'] as string;
  const events = k.audits().filter((a) => a.id === id);
  const issued = events.find((a) => a.decision === 'allow')!;
  t.match(issued, { kind: 'presign', sub: 'alice', jti: 'jti-presign', provider: 'signed', uri: 's3://bucket2/a/x.jpg', reason: 'ok', client: '127.0.0.1' });
  t.equal(issued.expiresAt, (JSON.parse(res.body.toString()) as { results: { expiresAt?: string }[] }).results[0]!.expiresAt, 'the event says until when the URL works');
  t.match(events.find((a) => a.decision === 'deny'), { kind: 'presign', reason: 'scope_denied', uri: 's3://bucket2/b/y.jpg', jti: 'jti-presign' });
  t.equal(events.length, 2, 'one event per URI of the batch');

  // The whole batch refused (a bad token): one event, with who the token claims to be.
  const expired = await k.token({ sub: 'eve', jti: 'jti-old', iat: Math.floor(Date.now() / 1000) - 7200, ttlSeconds: 60 });
  const refused = await post(expired, { uris: ['s3://bucket2/a/x.jpg'] });
  t.equal(refused.status, 401);
  t.match(await auditFor(k, refused.headers['x-request-id'] as string), { kind: 'presign', decision: 'deny', reason: 'token_expired', sub: 'eve', jti: 'jti-old', unverified: true, client: '127.0.0.1' });
});

t.test('log.audit: false writes no audit events', async (t) => {
  const k = await startKeyhole(baseYaml(`providers:\n  - { name: files, kind: local, match: "local://files/", root: ${root} }\n`).replace('log: { level: debug }', 'log: { level: debug, audit: false }'));
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['local://files/'] });
  t.equal((await k.get(dataUrl('local://files/a.txt'), { authorization: `Bearer ${token}` })).status, 200);
  await new Promise((r) => setImmediate(r));
  t.equal(k.audits().length, 0);
});
