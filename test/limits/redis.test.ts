// The limits engine on a real redis-server over mTLS, two limiters standing for two replicas:
// the Lua script does what the memory store does; rate, concurrency, bytes and objects hold
// across both; one alert per crossing however many replicas count; usage and reset by SCAN;
// Redis killed → fail closed (not ready), Redis back → decides again, without a restart.
import t from 'tap';
import pino from 'pino';
import { startRedis, testClient, type TestRedis } from '../helpers/redis.ts';
import { testCerts } from '../helpers/certs.ts';
import { redisSectionSchema } from '../../src/redis/schema.ts';
import { RedisLimitStore } from '../../src/limits/redis-store.ts';
import { MemoryLimitStore, type Op } from '../../src/limits/store.ts';
import { FakeTransfer, isAdmission, makeLimiter, refusal, type Rig } from './support.ts';

const c = testCerts();

async function redisStore(r: TestRedis): Promise<RedisLimitStore> {
  const connection = redisSectionSchema.parse({ url: r.url, tls: { ca: c.caCert, cert: c.clientCert, key: c.clientKey }, connectTimeout: 10_000, commandTimeout: 3000, keyPrefix: 'kh-test:' });
  const s = await RedisLimitStore.open({ connection, logger: pino({ level: 'silent' }) });
  await s.whenConnected();
  return s;
}

/** Two replicas: two limiters, each with its own Redis connection, on the real clock. */
async function replicas(r: TestRedis, limits: Record<string, unknown>): Promise<[Rig, Rig]> {
  const make = async () => {
    const store = await redisStore(r);
    const clock = { now: Date.now() };
    const rig = makeLimiter({ store: 'redis', ...limits }, { store, clock, prefix: 'kh-test:' });
    // The real clock: windows and grants as in production.
    Object.defineProperty(clock, 'now', { get: () => Date.now(), set: () => undefined });
    return rig;
  };
  return [await make(), await make()];
}

t.test('the Lua script answers as the memory store does', async (t) => {
  const r = await startRedis();
  t.teardown(() => r.stop());
  const redis = await redisStore(r);
  t.teardown(() => redis.close());
  const memory = new MemoryLimitStore('kh-test:');
  const exp = Date.now() + 60_000;
  const k = (n: string) => `kh-test:{limits}:t:s=x:${n}`;
  const many = Array.from({ length: 2500 }, (_, i) => `m${i}`);
  const ops: Op[] = [
    { op: 'add', key: k('b'), delta: 10, expireAt: exp },
    { op: 'add', key: k('b'), delta: 0, expireAt: exp },
    { op: 'add', key: k('b'), delta: 5, expireAt: exp },
    { op: 'set', key: k('o'), expireAt: exp, members: ['a', 'b'] },
    { op: 'set', key: k('o'), expireAt: exp, members: ['b', 'c'] },
    { op: 'set', key: k('o'), expireAt: exp, members: [] },
    { op: 'has', key: k('o'), member: 'c' },
    { op: 'has', key: k('o'), member: 'z' },
    { op: 'set', key: k('big'), expireAt: exp, members: many },
    { op: 'slot', key: k('c'), max: 2, ttlMs: 10_000, member: 's1' },
    { op: 'slot', key: k('c'), max: 2, ttlMs: 10_000, member: 's2' },
    { op: 'slot', key: k('c'), max: 2, ttlMs: 10_000, member: 's3' },
    { op: 'free', key: k('c'), members: ['s1'] },
    { op: 'slot', key: k('c'), max: 2, ttlMs: 10_000, member: 's3' },
    { op: 'touch', key: k('c'), ttlMs: 10_000, members: ['s2', 's3'] },
    { op: 'slot', key: k('c'), max: 2, ttlMs: 10_000, member: 's4' },
    { op: 'take', key: k('r'), periodMs: 60_000, burst: 3, want: 2 },
    { op: 'take', key: k('r'), periodMs: 60_000, burst: 3, want: 2 },
  ];
  const fromRedis = await redis.run(ops);
  const fromMemory = memory.run(ops);
  t.same(fromRedis, fromMemory, 'same answers, operation by operation');
  t.same(fromRedis.slice(0, 3), [10, 10, 15], 'add: the running total; delta 0 reads');
  t.same(fromRedis.slice(3, 9), [2, 2, 3, 1, 3, 0], 'set: size and how many were new');
  t.same(fromRedis.slice(9, 11), [1, 0], 'has');
  t.same(fromRedis.slice(11, 13), [2500, 2500], '2,500 members in one operation (split for Lua, merged back)');
  t.same(fromRedis.slice(13, 20), [1, 1, 0, 0, 1, 0, 0], 'slots: two at most; a freed one is taken again');
  t.same(fromRedis.slice(20), [2, 1], 'take: two of the burst of 3, then the last one');
  const refused = (await redis.run([{ op: 'take', key: k('r'), periodMs: 60_000, burst: 3, want: 1 }]))[0]!;
  t.ok(refused < 0 && refused >= -60_000, `an empty bucket answers −(ms to wait): ${refused}`);
  const admin = await testClient(r);
  t.teardown(() => admin.disconnect());
  const ttl = await admin.pttl(k('b'));
  t.ok(ttl > 50_000 && ttl <= 60_000, 'counters expire with their window');
});

t.test('two replicas share one rate bucket, one set of slots, one byte and object count', async (t) => {
  const r = await startRedis();
  t.teardown(() => r.stop());
  const [a, b] = await replicas(r, {
    redis: { share: 0.25, linger: '300ms', sync: '50ms', stale: '200ms' },
    rules: [{ name: 'annotator', rate: { perSecond: 0.01, burst: 20 }, concurrent: 3, bytes: { '1h': 10_000 }, objects: { '1h': 5 } }],
  });
  t.teardown(async () => {
    await a.limiter.close();
    await b.limiter.close();
  });

  // Rate: 20 at once across both replicas, never more (0.01/s: no refill during the test).
  let admitted = 0;
  for (let i = 0; i < 40; i++) {
    const res = await (i % 2 ? a : b).admit({ sub: 'alice' }, { uri: 'local://files/same' });
    if (isAdmission(res)) {
      admitted++;
      res.done(true);
    }
  }
  t.ok(admitted <= 20, `rate across replicas: ${admitted} of 40 admitted, the burst is 20`);
  t.ok(admitted >= 10, 'a replica holding unused tokens refuses the other at most share × burst each');
  await new Promise((res) => setTimeout(res, 500));
  await a.limiter.sync();
  await b.limiter.sync();

  // Concurrency: 3 in flight across both.
  const c1 = await a.admit({ sub: 'carol' });
  const c2 = await b.admit({ sub: 'carol' });
  const c3 = await a.admit({ sub: 'carol' });
  t.ok(isAdmission(c1) && isAdmission(c2) && isAdmission(c3), 'three streaming, on two replicas');
  t.equal(refusal(await b.admit({ sub: 'carol' }))?.detail, 'annotator concurrent', 'the fourth refused on B');
  t.equal(refusal(await a.admit({ sub: 'carol' }))?.detail, 'annotator concurrent', 'and on A');
  for (const x of [c1, c2, c3]) if (isAdmission(x)) x.done(false);
  await new Promise((res) => setTimeout(res, 500)); // linger, then given back
  const three = [await b.admit({ sub: 'carol' }), await b.admit({ sub: 'carol' }), await b.admit({ sub: 'carol' })];
  t.ok(three.every(isAdmission), "A's slots, given back after linger, are taken on B");
  for (const x of three) if (isAdmission(x)) x.done(false);

  // Bytes: counted on both, refused on both once the total is reached.
  const dl = async (rig: Rig, bytes: number) => {
    const tr = new FakeTransfer();
    const res = await rig.admit({ sub: 'dave' }, { transfer: tr, uri: 'local://files/x' });
    if (isAdmission(res)) {
      tr.outcome.bytes = bytes;
      res.done(true);
    }
    return res;
  };
  t.ok(isAdmission(await dl(a, 6000)));
  await a.limiter.sync();
  t.ok(isAdmission(await dl(b, 6000)), "B's view is older than stale: it asks Redis (6000 < 10000) and admits");
  await b.limiter.sync();
  await new Promise((res) => setTimeout(res, 250));
  t.equal(refusal(await dl(a, 1))?.reason, 'quota_exceeded', "A refuses: its view, older than stale, is read again");
  t.equal(refusal(await dl(b, 1))?.reason, 'quota_exceeded', 'B refuses');
  t.match((await a.limiter.usage('dave')).find((u) => u.limit === 'bytes'), { value: 12_000, max: 10_000 }, 'one total in Redis');

  // Objects: the same object on both replicas counts once.
  const obj = async (rig: Rig, uri: string) => {
    const res = await rig.admit({ sub: 'erin' }, { uri });
    if (isAdmission(res)) res.done(true);
    return isAdmission(res);
  };
  for (const u of ['o1', 'o2', 'o3']) t.ok(await obj(a, `local://files/${u}`), `${u} on A`);
  await a.limiter.sync();
  for (const u of ['o1', 'o2', 'o3', 'o4']) t.ok(await obj(b, `local://files/${u}`), `${u} on B`);
  await b.limiter.sync();
  t.match((await b.limiter.usage('erin')).find((u) => u.limit === 'objects'), { value: 4, max: 5 }, 'o1–o3 read on both count once');
  t.ok(await obj(a, 'local://files/o5'), 'o5: the fifth');
  await a.limiter.sync();
  await new Promise((res) => setTimeout(res, 250));
  t.notOk(await obj(b, 'local://files/o6'), 'o6 refused on B');
  t.ok(await obj(b, 'local://files/o5'), 'o5, counted on A, is free on B (Redis knows it)');
});

t.test('an alert fires once per crossing, whichever replica counted past it', async (t) => {
  const r = await startRedis();
  t.teardown(() => r.stop());
  const [a, b] = await replicas(r, { redis: { sync: '20ms' }, alerts: { quota: [0.5] }, rules: [{ name: 'annotator', bytes: { '1d': 100_000 } }] });
  t.teardown(async () => {
    await a.limiter.close();
    await b.limiter.close();
  });
  await Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      const rig = i % 2 ? a : b;
      const tr = new FakeTransfer();
      const res = await rig.admit({ sub: 'alice' }, { transfer: tr });
      tr.outcome.bytes = 2000;
      if (isAdmission(res)) res.done(true);
    }),
  );
  await a.limiter.sync();
  await b.limiter.sync();
  const alerts = [...a.alerts, ...b.alerts];
  t.equal(alerts.length, 1, `80,000 bytes of 100,000 counted on two replicas: one alert for 50% (A ${a.alerts.length}, B ${b.alerts.length})`);
  t.match(alerts[0], { alert: 'quota', threshold: 0.5, max: 100_000, who: { sub: 'alice' } });
  t.ok(alerts[0]!.used >= 50_000 && alerts[0]!.used < 80_000 + 1, `used at the crossing: ${alerts[0]!.used}`);
});

t.test('usage and reset through Redis; reset reaches the other replica within stale', async (t) => {
  const r = await startRedis();
  t.teardown(() => r.stop());
  const [a, b] = await replicas(r, { redis: { stale: '200ms', sync: '50ms' }, rules: [{ name: 'annotator', bytes: { '1h': 1000 } }, { name: 'org', per: ['org'], bytes: { '1h': 1_000_000 } }] });
  t.teardown(async () => {
    await a.limiter.close();
    await b.limiter.close();
  });
  const tr = new FakeTransfer();
  const res = await a.admit({ sub: 'alice', org: 'acme' }, { transfer: tr });
  tr.outcome.bytes = 1500;
  if (isAdmission(res)) res.done(true);
  await a.limiter.sync();
  t.equal(refusal(await b.admit({ sub: 'alice', org: 'acme' }))?.reason, 'quota_exceeded', 'B refuses alice');
  const usage = await b.limiter.usage('alice');
  t.same(
    usage.map((u) => [u.rule, u.limit, u.value, u.max]),
    [['annotator', 'bytes', 1500, 1000]],
    "alice's own counters (the org's is not hers)",
  );
  t.ok((await a.limiter.reset('alice')) >= 1, 'reset through A');
  await new Promise((res) => setTimeout(res, 300));
  t.ok(isAdmission(await b.admit({ sub: 'alice', org: 'acme' })), 'B admits her again once its view is stale');
  t.same(await a.limiter.usage('nobody'), []);
});

t.test('Redis killed: fail closed (not ready), then decides again when Redis is back, without a restart', async (t) => {
  const r = await startRedis();
  t.teardown(() => r.stop());
  const [a, b] = await replicas(r, { rules: [{ name: 'annotator', rate: { perSecond: 100, burst: 100 } }] });
  t.teardown(async () => {
    await a.limiter.close();
    await b.limiter.close();
  });
  t.ok(isAdmission(await a.admit({ sub: 'alice' })), 'admitted while Redis answers');
  await r.kill();
  await new Promise((res) => setTimeout(res, 200));
  t.equal(a.limiter.ready(), false, 'not ready');
  const down = refusal(await a.admit({ sub: 'alice' }));
  t.equal(down?.reason, 'limits_unavailable', 'tokens held locally do not help: fail closed');
  await r.restart();
  const until = Date.now() + 15_000;
  while (!a.limiter.ready() && Date.now() < until) await new Promise((res) => setTimeout(res, 50));
  t.equal(a.limiter.ready(), true, 'ready again by itself');
  t.ok(isAdmission(await a.admit({ sub: 'alice' })), 'admitted again');
});
