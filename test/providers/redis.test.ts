// The redis provider against a real redis-server over mTLS: whole values, ranges (within
// and across GETRANGE chunks), HEAD, a missing key, content types, databases.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { redisProviderItem, startRedis, testClient } from '../helpers/redis.ts';
import { testCerts } from '../helpers/certs.ts';
import { auditFor, baseYaml, dataUrl, keyholeWith, startKeyhole } from '../helpers/keyhole.ts';
import { whenReady } from '../../src/redis/connect.ts';
import { redisProviderSchema } from '../../src/providers/redis.ts';

const c = testCerts();

t.test('redis provider over mTLS', async (t) => {
  const r = await startRedis();
  t.teardown(() => r.stop());
  const db0 = await testClient(r, { name: 'seed0' });
  const db1 = await testClient(r, { name: 'seed1', db: 1 });
  t.teardown(() => {
    db0.disconnect();
    db1.disconnect();
  });
  const big = randomBytes(10_000); // ten 1 KiB chunks, and a bit
  await db0.set('images/big.bin', big);
  await db0.set('images/cat.png', Buffer.from('not really a png'));
  await db0.set('notes/readme', 'plain text value');
  await db0.set('notes/readme:type', 'text/plain; charset=utf-8');
  await db0.set('empty', '');
  await db0.rpush('a-list', 'x');
  await db1.set('Mixed/Case Key.txt', 'from db 1');

  const blobs = redisProviderItem(r, { extra: 'chunkSize: 1024\ncontentType: application/x-keyhole-test\ncontentTypeKey: "{key}:type"' });
  const { k, auth } = await keyholeWith(t, `providers:\n${blobs}${redisProviderItem(r, { name: 'other-db', match: 'redis://1/' })}`, ['redis://0/', 'redis://1/']);

  t.test('whole value larger than one chunk', async (t) => {
    const res = await k.get(dataUrl('redis://0/images/big.bin'), auth);
    t.equal(res.status, 200);
    t.equal(res.headers['content-length'], String(big.length));
    t.equal(res.headers['accept-ranges'], 'bytes');
    t.ok(res.body.equals(big), 'every byte, in order, across ten GETRANGE chunks');
    t.equal(res.headers['content-type'], 'application/x-keyhole-test', 'configured type when there is no companion key');
    const audit = await auditFor(k, res.headers['x-request-id'] as string);
    t.match(audit, { provider: 'blobs', uri: 'redis://0/images/big.bin', reason: 'ok', status: 200, bytes: big.length });
  });

  t.test('Range within and across chunks, suffix, unsatisfiable', async (t) => {
    const across = await k.get(dataUrl('redis://0/images/big.bin'), { ...auth, range: 'bytes=1000-3500' });
    t.equal(across.status, 206);
    t.equal(across.headers['content-range'], `bytes 1000-3500/${big.length}`);
    t.ok(across.body.equals(big.subarray(1000, 3501)));
    const inside = await k.get(dataUrl('redis://0/images/big.bin'), { ...auth, range: 'bytes=5-9' });
    t.equal(inside.status, 206);
    t.ok(inside.body.equals(big.subarray(5, 10)));
    const suffix = await k.get(dataUrl('redis://0/images/big.bin'), { ...auth, range: 'bytes=-100' });
    t.equal(suffix.status, 206);
    t.ok(suffix.body.equals(big.subarray(big.length - 100)));
    const open = await k.get(dataUrl('redis://0/images/big.bin'), { ...auth, range: 'bytes=9990-' });
    t.ok(open.body.equals(big.subarray(9990)));
    const beyond = await k.get(dataUrl('redis://0/images/big.bin'), { ...auth, range: 'bytes=20000-' });
    t.equal(beyond.status, 416);
    t.equal(beyond.headers['content-range'], `bytes */${big.length}`);
    const ifRange = await k.get(dataUrl('redis://0/images/big.bin'), { ...auth, range: 'bytes=0-9', 'if-range': '"x"' });
    t.equal(ifRange.status, 200, 'an If-Range cannot be confirmed without validators: whole value');
  });

  t.test('HEAD: headers, no body', async (t) => {
    const res = await k.get(dataUrl('redis://0/images/big.bin'), auth, 'HEAD');
    t.equal(res.status, 200);
    t.equal(res.headers['content-length'], String(big.length));
    t.equal(res.body.length, 0);
  });

  t.test('missing key → 404, wrong type → 404, empty value → 200 empty', async (t) => {
    const missing = await k.get(dataUrl('redis://0/images/nope.png'), auth);
    t.equal(missing.status, 404);
    t.equal(JSON.parse(missing.body.toString()).error, 'not_found');
    const list = await k.get(dataUrl('redis://0/a-list'), auth);
    t.equal(list.status, 404);
    const audit = await auditFor(k, list.headers['x-request-id'] as string);
    t.match(audit, { reason: 'not_found' });
    const empty = await k.get(dataUrl('redis://0/empty'), auth);
    t.equal(empty.status, 200);
    t.equal(empty.headers['content-length'], '0');
  });

  t.test('content type: companion key, else config, else nothing guessed past the config', async (t) => {
    const readme = await k.get(dataUrl('redis://0/notes/readme'), auth);
    t.equal(readme.headers['content-type'], 'text/plain;charset=utf-8', 'from the companion key');
    t.equal(readme.body.toString(), 'plain text value');
    const other = await k.get(dataUrl('redis://1/Mixed/Case%20Key.txt'), auth);
    t.equal(other.status, 200);
    t.equal(other.body.toString(), 'from db 1', 'database from the authority, key case kept');
    t.equal(other.headers['content-type'], 'text/plain;charset=utf-8', 'by extension when nothing is configured');
    t.equal(other.headers['x-content-type-options'], 'nosniff');
  });

  t.test('the token scope still applies', async (t) => {
    const narrow = await k.token({ scope: ['redis://0/notes/'] });
    const res = await k.get(dataUrl('redis://0/images/big.bin'), { authorization: `Bearer ${narrow}` });
    t.equal(res.status, 403);
  });
});

t.test('config: the match authority must be a database number', async (t) => {
  const base = { name: 'x', kind: 'redis', redis: { url: 'rediss://h:1' } };
  t.notOk(redisProviderSchema.safeParse({ ...base, match: 'redis://cache/' }).success);
  t.notOk(redisProviderSchema.safeParse({ ...base, match: 'https://h/' }).success);
  t.ok(redisProviderSchema.safeParse({ ...base, match: 'redis:///' }).success);
  t.ok(redisProviderSchema.safeParse({ ...base, match: 'redis://2/images/' }).success);
  t.notOk(redisProviderSchema.safeParse({ ...base, match: 'redis://0/', contentTypeKey: 'no-placeholder' }).success);
});

t.test('redis provider: a foreign client certificate refuses start-up; Redis away → 502, back → served', async (t) => {
  const r = await startRedis();
  t.teardown(() => r.stop());
  const providerYaml = (cert: string, key: string) =>
    baseYaml(`providers:
  - name: blobs
    kind: redis
    match: redis:///
    redis:
      url: ${r.url}
      tls: { ca: ${c.caCert}, cert: ${cert}, key: ${key} }
      commandTimeout: 10s
`);
  await t.rejects(startKeyhole(providerYaml(c.otherClientCert, c.otherClientKey)), /providers\[0\] \(blobs\): .*refused the client certificate/);

  const k = await startKeyhole(providerYaml(c.clientCert, c.clientKey));
  t.teardown(() => k.close());
  const seed = await testClient(r, { name: 'seed' });
  t.teardown(() => seed.disconnect());
  await seed.set('k.txt', 'v1');
  const token = await k.token({ scope: ['redis:///'] });
  const auth = { authorization: `Bearer ${token}` };
  t.equal((await k.get(dataUrl('redis:///k.txt'), auth)).status, 200, 'the default database through redis:///');

  await r.kill();
  const res = await k.get(dataUrl('redis:///k.txt'), auth);
  t.ok(res.status === 502 || res.status === 504, `Redis away: ${res.status}`);
  t.match(JSON.parse(res.body.toString()).error, /^upstream_(error|timeout)$/);

  await r.restart();
  await whenReady(seed, 10_000); // the seed client reconnects by itself: Redis is back
  await seed.set('k.txt', 'v2');
  // A request during the provider's reconnect waits for it (offline queue, bounded by commandTimeout).
  const back = await k.get(dataUrl('redis:///k.txt'), auth);
  t.equal(back.status, 200, 'served again without a restart');
  t.equal(back.body.toString(), 'v2');
});
