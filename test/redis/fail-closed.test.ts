// A Keyhole with revocation in Redis (mTLS): Redis killed mid-run → data requests fail
// closed with 503 revocation_unavailable and /readyz says not ready; Redis restarted on the
// same port → Keyhole recovers by itself; admin revocation works again.
import t from 'tap';
import { tmpdir } from 'node:os';
import { request } from 'undici';
import { keyholeOnRedis, startRedis } from '../helpers/redis.ts';
import { ADMIN_TOKEN, auditFor, baseYaml, dataUrl, startKeyhole, tempFiles } from '../helpers/keyhole.ts';

async function admin(base: string, path: string, body?: unknown) {
  const res = await request(base + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.body.text();
  return { status: res.statusCode, text, json: () => JSON.parse(text) };
}

t.test('fail closed while Redis is away, recover when it returns', async (t) => {
  const { k, r, store } = await keyholeOnRedis(t, tempFiles('fc'));
  const token = await k.token({ scope: ['local://files/'], jti: 'fc-1' });
  const auth = { authorization: `Bearer ${token}` };

  t.equal((await k.get(dataUrl('local://files/a.txt'), auth)).status, 200);
  t.equal((await admin(k.admin, '/readyz')).status, 200);

  const down = new Promise((resolve) => store.once('down', resolve));
  await r.kill();
  await down;
  const refused = await k.get(dataUrl('local://files/a.txt'), auth);
  t.equal(refused.status, 503, 'fail closed');
  t.equal(JSON.parse(refused.body.toString()).error, 'revocation_unavailable');
  t.match(await auditFor(k, refused.headers['x-request-id'] as string), { reason: 'revocation_unavailable', decision: 'error', status: 503 });
  const ready = await admin(k.admin, '/readyz');
  t.equal(ready.status, 503);
  t.match(ready.json(), { ready: false, revocation: false });
  const metrics = (await admin(k.admin, '/metrics')).text;
  t.match(metrics, /^keyhole_revocation_unavailable_total\{action="denied"\} 1$/m);
  t.match(metrics, /^keyhole_redis_up 0$/m);
  t.match(metrics, /^keyhole_revocation_store_up 0$/m);
  const revokeWhileDown = await admin(k.admin, '/admin/revoke', { jti: 'fc-1' });
  t.equal(revokeWhileDown.status, 503, 'an admin revocation that cannot be stored is refused, not lost silently');
  t.ok(k.logs.some((l) => l.msg === 'redis revocation store is down: requests fail closed until it returns'));

  const up = new Promise((resolve) => store.once('up', resolve));
  await r.restart();
  await up;
  t.equal((await admin(k.admin, '/readyz')).status, 200, 'ready again, no restart of Keyhole');
  t.equal((await k.get(dataUrl('local://files/a.txt'), auth)).status, 200);
  const revoked = await admin(k.admin, '/admin/revoke', { jti: 'fc-1' });
  t.equal(revoked.status, 200);
  const after = await k.get(dataUrl('local://files/a.txt'), auth);
  t.equal(after.status, 401);
  t.equal(JSON.parse(after.body.toString()).error, 'token_revoked');
  t.notOk(k.rawLogs().includes(token), 'the token never appears in logs');
});

t.test('start-up is refused when the Redis TLS setup is wrong', async (t) => {
  const r = await startRedis({ plainPort: true });
  t.teardown(() => r.stop());
  const yaml = baseYaml(`revocation: { store: redis }
redis:
  url: rediss://localhost:${r.plainPort}
${r.yaml('  ').split('\n')[1]}
providers:
  - { name: files, kind: local, match: "local://files/", root: ${tmpdir()} }
`);
  await t.rejects(startKeyhole(yaml), /answers in plaintext, but the config demands TLS/);
});

t.test('config: revocation.store redis needs the redis section', async (t) => {
  await t.rejects(
    startKeyhole(baseYaml(`revocation: { store: redis }
providers:
  - { name: files, kind: local, match: "local://files/", root: ${tmpdir()} }
`)),
    /revocation\.store redis needs the top-level redis: section/,
  );
});
