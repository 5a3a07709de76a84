// Two real Keyhole processes (`keyhole serve --config …`) share one redis-server over mTLS.
// A revocation answered by replica A's admin API must refuse the token on replica B, whose
// cache still holds "not revoked" for a minute: only pub/sub can carry it. The delay from
// A's answer to B's first 401 is measured and printed.
import t from 'tap';
import { redisRevocationYaml, startRedis } from '../helpers/redis.ts';
import { ADMIN_TOKEN, TEST_SECRET, baseYaml, dataUrl, filesProviderYaml, tempFiles } from '../helpers/keyhole.ts';
import { spawnKeyhole, type KeyholeProcess } from '../helpers/spawn.ts';

t.test('revocation through replica A reaches replica B by pub/sub', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const dir = tempFiles('replicas', { 'a.txt': 'shared bytes' });
  const yaml = baseYaml(redisRevocationYaml(redis, { revocation: 'cacheTtl: 60s', redis: 'commandTimeout: 3s' }) + filesProviderYaml(dir), { log: '{ level: info }' });
  const replica = async () => {
    const k = await spawnKeyhole(yaml);
    t.teardown(() => k.stop());
    await k.waitForLog((l) => l.msg === 'redis revocation store is up', 60_000, 'the Redis link');
    return k;
  };
  const [a, b] = await Promise.all([replica(), replica()]);
  const get = async (k: KeyholeProcess, token: string) => (await k.get(dataUrl('local://files/a.txt'), { headers: { authorization: `Bearer ${token}` } })).status;
  const revoke = async (body: object) => (await a.adminPost('/admin/revoke', body)).status;

  /** Warms B's cache, revokes through A, then asks B until it refuses. */
  const measure = async (token: string, body: object) => {
    t.equal(await get(b, token), 200, 'B serves the token');
    t.equal(await get(b, token), 200, 'B serves it from its cache');
    t.equal(await get(a, token), 200, 'A serves it too');
    const answer = await revoke(body);
    t.equal(answer, 200, 'A answers the revocation');
    if (answer !== 200) throw new Error('revocation refused');
    const answered = performance.now();
    let served = 0;
    for (;;) {
      const status = await get(b, token);
      if (status === 401) break;
      t.equal(status, 200);
      served++;
      if (performance.now() - answered > 10_000) throw new Error('B never refused the revoked token');
    }
    return { ms: performance.now() - answered, served };
  };

  const rounds: { kind: string; ms: number; served: number }[] = [];
  for (let i = 0; i < 5; i++) {
    const token = await a.token({ sub: `user-${i}`, jti: `replica-jti-${i}` });
    rounds.push({ kind: 'jti', ...(await measure(token, { jti: `replica-jti-${i}` })) });
  }
  for (let i = 0; i < 3; i++) {
    const token = await a.token({ sub: `reset-user-${i}` });
    rounds.push({ kind: 'sub', ...(await measure(token, { sub: `reset-user-${i}` })) });
  }
  const sorted = rounds.map((r) => r.ms).sort((x, y) => x - y);
  const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
  const summary = `revocation propagation A→B (admin answer → first 401 on B, includes one HTTPS request to B): ` +
    `min ${fmt(sorted[0]!)}, median ${fmt(sorted[Math.floor(sorted.length / 2)]!)}, max ${fmt(sorted[sorted.length - 1]!)} over ${rounds.length} revocations; ` +
    `requests B still served after A's answer: ${rounds.reduce((n, r) => n + r.served, 0)}`;
  t.comment(summary);
  console.log(summary);
  for (const r of rounds) t.ok(r.ms < 60_000, `${r.kind}: refused on B in ${fmt(r.ms)}, well before B's 60 s cache could expire: pub/sub carried it`);
  t.notOk(a.output().includes(TEST_SECRET) || b.output().includes(ADMIN_TOKEN), 'no secret in the replicas\' logs');
});
