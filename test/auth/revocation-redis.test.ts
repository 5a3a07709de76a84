// The Redis revocation store against a real redis-server over mTLS: two stores (two
// replicas) share it; cached answers cost no Redis command; pub/sub carries revocations;
// Redis killed → fail closed (or allow, when opted in); Redis back → recovers by itself.
import t from 'tap';
import { once } from 'node:events';
import pino from 'pino';
import { startRedis, testClient, type TestRedis } from '../helpers/redis.ts';
import { testCerts } from '../helpers/certs.ts';
import { RedisRevocationStore, type Invalidation } from '../../src/auth/revocation-redis.ts';
import { RevocationUnavailable } from '../../src/auth/revocation.ts';
import type { SessionClaims } from '../../src/auth/claims.ts';
import { redisRevocationSchema, redisSectionSchema } from '../../src/redis/schema.ts';
import type { RedisClient } from '../../src/redis/connect.ts';
import { Metrics } from '../../src/observe/metrics.ts';

const c = testCerts();
const now = () => Math.floor(Date.now() / 1000);

/** What `fn` throws synchronously; undefined when it returns. */
function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

function claims(over: Partial<SessionClaims> = {}): SessionClaims {
  return { sub: 'bob', exp: now() + 600, iat: now() - 10, jti: undefined, org: undefined, project: undefined, scope: [], uri: undefined, ...over };
}

function connection(r: TestRedis) {
  return redisSectionSchema.parse({ url: r.url, tls: { ca: c.caCert, cert: c.clientCert, key: c.clientKey }, connectTimeout: 10_000, commandTimeout: 3000 });
}

async function store(r: TestRedis, settings: Record<string, unknown> = {}) {
  const metrics = new Metrics(false);
  const s = await RedisRevocationStore.open({
    connection: connection(r),
    settings: redisRevocationSchema.parse({ store: 'redis', cacheTtl: '60s', ...settings }),
    subjectTtlSeconds: 3600,
    logger: pino({ level: 'silent' }),
    metrics,
  });
  await s.whenConnected();
  return { s, metrics };
}

/** How many times the server ran `cmd` (INFO commandstats): proves a lookup did or did not hit Redis. */
async function calls(admin: RedisClient, cmd: string): Promise<number> {
  const info = String(await admin.info('commandstats'));
  const m = new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(info);
  return m ? Number(m[1]) : 0;
}

const counter = async (metrics: Metrics, name: string, label: string) => {
  const text = await metrics.registry.metrics();
  const m = new RegExp(`^${name}\\{[^}]*"${label}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
};

t.test('two replicas share revocations through Redis', async (t) => {
  const r = await startRedis();
  t.teardown(() => r.stop());
  const { s: a } = await store(r);
  const { s: b, metrics: mb } = await store(r);
  const admin = await testClient(r, { name: 'test-admin' });
  t.teardown(async () => {
    admin.disconnect();
    await a.close();
    await b.close();
  });

  const tok = claims({ jti: 'jti-1' });
  t.equal(await b.isRevoked(tok), false, 'first lookup asks Redis');
  const before = (await calls(admin, 'exists')) + (await calls(admin, 'get'));
  const cached = b.isRevoked(tok);
  t.equal(cached, false, 'a cached answer is a plain boolean (no promise, no I/O)');
  for (let i = 0; i < 100; i++) b.isRevoked(tok);
  t.equal((await calls(admin, 'exists')) + (await calls(admin, 'get')), before, 'cached lookups sent no command to Redis');
  t.equal(await counter(mb, 'keyhole_revocation_lookups_total', 'hit'), 101);

  // Revoke through replica A; replica B learns it by pub/sub (its cache says "not revoked" for 60 s).
  const heard = once(b, 'invalidation') as Promise<[Invalidation]>;
  const exp = now() + 7200;
  await a.revokeToken('jti-1', exp);
  const [inv] = await heard;
  t.same(inv, { kind: 'jti', id: 'jti-1', value: exp });
  t.equal(b.isRevoked(tok), true, 'B refuses the token from its cache, without asking Redis');
  t.equal(a.isRevoked(tok), true, 'A refuses it at once too');
  const ttl = await admin.ttl('keyhole:revoked:jti:jti-1');
  t.ok(ttl > 7190 && ttl <= 7200, `the revoked jti is kept until the exp asked, past the horizon (ttl ${ttl})`);

  // An expiry sooner than the horizon (the longest token lifetime + skew) does not free a
  // token that can still be accepted; nor does a later call with an earlier expiry shorten it.
  const start = now();
  const heardShort = once(b, 'invalidation') as Promise<[Invalidation]>;
  await a.revokeToken('jti-short', start + 5);
  const [short] = await heardShort;
  t.ok(short.value >= start + 3600, `replicas are told it holds for the horizon (${short.value - start}s), not 5 s`);
  const shortTtl = await admin.ttl('keyhole:revoked:jti:jti-short');
  t.ok(shortTtl > 3590 && shortTtl <= 3600, `kept in Redis for the horizon, not 5 s (ttl ${shortTtl})`);
  await a.revokeToken('jti-1', now() + 1);
  t.ok((await admin.ttl('keyhole:revoked:jti:jti-1')) > 7000, 'an earlier expiry never shortens a revocation');
  t.equal(await b.isRevoked(claims({ jti: 'jti-2' })), false, 'another jti is not revoked');

  // Subject revocation: every token of bob issued at or before the second dies.
  const at = now();
  const heardSub = once(b, 'invalidation') as Promise<[Invalidation]>;
  await a.revokeSubject('bob', at);
  t.same((await heardSub)[0], { kind: 'sub', id: 'bob', value: at });
  t.equal(await b.isRevoked(claims({ iat: at - 5 })), true, 'older token of bob refused');
  t.equal(await b.isRevoked(claims({ iat: at })), true, 'same-second token refused (fail closed)');
  t.equal(await b.isRevoked(claims({ iat: at + 1 })), false, 'token issued after the revocation works');
  t.equal(await b.isRevoked(claims({ sub: 'carol' })), false, 'other subjects untouched');
  const subTtl = await admin.ttl('keyhole:revoked:sub:bob');
  t.ok(subTtl > 3500 && subTtl <= 3600, `subject not-before kept for the longest token lifetime (ttl ${subTtl})`);

  // An older not-before never lowers a newer one.
  await a.revokeSubject('bob', at - 100);
  t.equal(await admin.get('keyhole:revoked:sub:bob'), String(at));
  t.equal(await b.isRevoked(claims({ iat: at - 1 })), true);

  // A third replica that starts later reads the state from Redis (cache miss).
  const { s: late } = await store(r);
  t.teardown(() => late.close());
  t.equal(await late.isRevoked(tok), true);
  t.equal(await late.isRevoked(claims({ iat: at - 1 })), true);
});

t.test('Redis killed: fail closed (or allow when opted in), then recover by itself', async (t) => {
  const r = await startRedis();
  t.teardown(() => r.stop());
  const { s: strict, metrics } = await store(r);
  const { s: lenient, metrics: lenientMetrics } = await store(r, { onRedisError: 'allow' });
  t.teardown(async () => {
    await strict.close();
    await lenient.close();
  });
  const tok = claims({ jti: 'jti-k' });
  t.equal(await strict.isRevoked(tok), false);
  t.ok(strict.ready());

  const down = Promise.all([once(strict, 'down'), once(lenient, 'down')]);
  await r.kill();
  await down;
  t.notOk(strict.ready(), 'not ready: /readyz reports it');
  t.ok(thrownBy(() => strict.isRevoked(tok)) instanceof RevocationUnavailable, 'even a cached answer is refused: invalidations may be missed');
  const failed = await strict.revokeToken('x', now() + 60).then(() => undefined, (err: unknown) => err);
  t.ok(failed instanceof RevocationUnavailable, 'revoking fails loudly too');
  t.equal(await counter(metrics, 'keyhole_revocation_unavailable_total', 'denied'), 1);
  t.equal(lenient.isRevoked(tok), false, 'onRedisError: allow serves unchecked');
  t.ok(lenient.ready(), 'allow keeps the replica in rotation');
  t.equal(await counter(lenientMetrics, 'keyhole_revocation_unavailable_total', 'allowed'), 1);
  t.match(await metrics.registry.metrics(), /^keyhole_redis_up 0$/m);

  const up = once(strict, 'up');
  await r.restart();
  await up;
  t.ok(strict.ready(), 'ready again without a restart of Keyhole');
  t.equal(await strict.isRevoked(tok), false);
  await strict.revokeToken('jti-k', now() + 60);
  t.equal(await strict.isRevoked(tok), true, 'revocations work again');
  t.match(await metrics.registry.metrics(), /^keyhole_redis_up 1$/m);
});

t.test('a frozen Redis (sockets open, no answers) is detected by the heartbeat: fail closed, then recover', async (t) => {
  const r = await startRedis();
  t.teardown(async () => {
    r.resume();
    await r.stop();
  });
  const { s } = await store(r, { cacheTtl: '60s' });
  t.teardown(() => s.close());
  const tok = claims({ jti: 'jti-frozen' });
  t.equal(await s.isRevoked(tok), false);
  t.equal(s.isRevoked(tok), false, 'cached for a minute');
  const down = once(s, 'down');
  r.pause();
  await down; // within about heartbeat (1 s) + commandTimeout; no socket was closed by Redis
  t.notOk(s.ready());
  t.ok(thrownBy(() => s.isRevoked(tok)) instanceof RevocationUnavailable, 'the cached answer is no longer trusted');
  const up = once(s, 'up');
  r.resume();
  await up;
  t.equal(await s.isRevoked(tok), false, 'answers again once Redis does');
});
