// Sentinel and Cluster over mutual TLS, through ioredis' own options (enableTLSForSentinelMode
// + sentinelTLS, Cluster redisOptions.tls): real redis-server processes in sentinel and
// cluster mode. Two revocation stores share state through each; the redis provider reads
// from the cluster.
import t from 'tap';
import type { Test } from 'tap';
import { once } from 'node:events';
import pino from 'pino';
import { Cluster } from 'ioredis';
import { startClusterNode, startRedis, startSentinel, testClient } from '../helpers/redis.ts';
import { testCerts } from '../helpers/certs.ts';
import { baseYaml, dataUrl, startKeyhole } from '../helpers/keyhole.ts';
import { RedisRevocationStore, type Invalidation } from '../../src/auth/revocation-redis.ts';
import type { SessionClaims } from '../../src/auth/claims.ts';
import { redisRevocationSchema, redisSectionSchema, type RedisSectionConfig } from '../../src/redis/schema.ts';
import { createRedisClient, preflightRedis, whenReady } from '../../src/redis/connect.ts';
import { Metrics } from '../../src/observe/metrics.ts';

const c = testCerts();
const tls = { ca: c.caCert, cert: c.clientCert, key: c.clientKey };
const now = () => Math.floor(Date.now() / 1000);
const claims = (jti: string): SessionClaims => ({ sub: 'dana', exp: now() + 600, iat: now() - 5, jti, org: undefined, project: undefined, scope: [], uri: undefined });

async function pairShares(t: Test, connection: RedisSectionConfig) {
  const open = () =>
    RedisRevocationStore.open({
      connection,
      settings: redisRevocationSchema.parse({ store: 'redis', cacheTtl: '60s' }),
      subjectTtlSeconds: 600,
      logger: pino({ level: 'silent' }),
      metrics: new Metrics(false),
    });
  const a = await open();
  const b = await open();
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  await Promise.all([a.whenConnected(), b.whenConnected()]);
  t.equal(await b.isRevoked(claims('topo-1')), false);
  const heard = once(b, 'invalidation') as Promise<[Invalidation]>;
  await a.revokeToken('topo-1', now() + 60);
  t.match((await heard)[0], { kind: 'jti', id: 'topo-1' });
  t.equal(b.isRevoked(claims('topo-1')), true, 'B heard the revocation made through A');
}

t.test('Sentinel: TLS to the sentinels and to the master it names', async (t) => {
  const master = await startRedis();
  t.teardown(() => master.stop());
  const sentinel = await startSentinel(master);
  t.teardown(() => sentinel.stop());
  const connection = redisSectionSchema.parse({ sentinel: { name: 'mymaster', nodes: [`localhost:${sentinel.port}`] }, tls });
  t.same(await preflightRedis(connection), { unreachable: [] }, 'the sentinel passes the TLS preflight');
  await pairShares(t, connection);
  const wrong = redisSectionSchema.parse({ sentinel: { name: 'mymaster', nodes: [`localhost:${sentinel.port}`] }, tls: { ...tls, cert: c.otherClientCert, key: c.otherClientKey } });
  await t.rejects(preflightRedis(wrong), /refused the client certificate/, 'the sentinel demands our CA too');
});

t.test('Cluster: redisOptions.tls on every node; the redis provider reads from it', async (t) => {
  const node = await startClusterNode();
  t.teardown(() => node.stop());
  const connection = redisSectionSchema.parse({ cluster: { nodes: [`localhost:${node.port}`] }, tls });
  // One node owns every slot; the cluster is ok once it has seen that (no event to await).
  const direct = await testClient({ url: `rediss://localhost:${node.port}` }, { name: 'setup' });
  t.teardown(() => direct.disconnect());
  await direct.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
  for (let i = 0; !String(await direct.call('CLUSTER', 'INFO')).includes('cluster_state:ok'); i++) {
    if (i > 100) throw new Error('cluster never became ok');
    await new Promise((r) => setTimeout(r, 50));
  }
  const cluster = createRedisClient(connection, { name: 'cluster-seed', offlineQueue: true });
  t.teardown(() => cluster.disconnect());
  await whenReady(cluster, 5000);
  t.ok(cluster instanceof Cluster, 'a cluster client');
  await cluster.set('clips/a.bin', Buffer.alloc(3000, 9));
  await pairShares(t, connection);

  const k = await startKeyhole(
    baseYaml(`providers:
  - name: clustered
    kind: redis
    match: redis://0/
    chunkSize: 1024
    redis:
      cluster: { nodes: ["localhost:${node.port}"] }
      tls: { ca: ${c.caCert}, cert: ${c.clientCert}, key: ${c.clientKey} }
`),
  );
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['redis://0/'] });
  const res = await k.get(dataUrl('redis://0/clips/a.bin'), { authorization: `Bearer ${token}`, range: 'bytes=1000-2499' });
  t.equal(res.status, 206);
  t.ok(res.body.equals(Buffer.alloc(1500, 9)));
});
