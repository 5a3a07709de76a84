// Connections to a real redis-server over mutual TLS: the good certificate works; every
// wrong setup is refused before anything listens, with a message that says what to fix.
import t from 'tap';
import type { Test } from 'tap';
import { startRedis } from '../helpers/redis.ts';
import { testCerts } from '../helpers/certs.ts';
import { redisConnectionSchema, redisSectionSchema } from '../../src/redis/schema.ts';
import { createRedisClient, preflightRedis, RedisSetupError, whenReady } from '../../src/redis/connect.ts';
import { Secret } from '../../src/config/secret.ts';

const c = testCerts();

function conn(fields: Record<string, unknown>) {
  return redisConnectionSchema.parse({ connectTimeout: 3000, ...fields });
}

t.test('mTLS against a real redis-server', async (t) => {
  const r = await startRedis({ plainPort: true });
  t.teardown(() => r.stop());
  const good = { url: r.url, tls: { ca: c.caCert, cert: c.clientCert, key: c.clientKey } };

  t.test('a good client certificate works, RESP2 pinned', async (t) => {
    t.same(await preflightRedis(conn(good)), { unreachable: [] });
    const client = createRedisClient(conn(good), { name: 'keyhole-test' });
    t.teardown(() => client.disconnect());
    await whenReady(client, 5000);
    t.equal(await client.set('k', 'v'), 'OK');
    t.equal(await client.get('k'), 'v');
    const info = String(await client.call('CLIENT', 'INFO'));
    t.match(info, /resp=2/, 'the connection speaks RESP2');
    t.match(info, /name=keyhole-test/);
  });

  const refused = async (t: Test, fields: Record<string, unknown>, pattern: RegExp) => {
    const err = await preflightRedis(conn(fields)).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof RedisSetupError, 'refused as a setup problem');
    t.match((err as Error).message, pattern);
    t.notMatch((err as Error).message, /BEGIN|PRIVATE/, 'no key material in the message');
  };

  t.test('no client certificate is refused', (t) => refused(t, { url: r.url, tls: { ca: c.caCert } }, /demands a client certificate: set tls\.cert and tls\.key/));
  t.test('a client certificate from another CA is refused', (t) =>
    refused(t, { url: r.url, tls: { ca: c.caCert, cert: c.otherClientCert, key: c.otherClientKey } }, /refused the client certificate: it is not issued by a CA the server trusts/));
  t.test('a wrong servername is refused (hostname verification)', (t) =>
    refused(t, { ...good, tls: { ...good.tls, servername: 'wrong.example' } }, /does not name the host.*tls\.servername.*ERR_TLS_CERT_ALTNAME_INVALID/));
  t.test('a server CA that is not ours is refused', (t) =>
    refused(t, { url: r.url, tls: { ca: c.otherCaCert, cert: c.clientCert, key: c.clientKey } }, /certificate.*(does not verify against tls\.ca|not in tls\.ca)/));
  t.test('a plaintext server is refused when the config demands TLS', (t) =>
    refused(t, { ...good, url: `rediss://localhost:${r.plainPort}` }, /answers in plaintext, but the config demands TLS/));
  t.test('a plaintext client against the TLS port is refused', (t) =>
    refused(t, { url: `redis://localhost:${r.port}`, insecurePlaintext: true }, /probably demands TLS/));

  t.test('a server that is down is not a config problem: reported as unreachable', async (t) => {
    const res = await preflightRedis(conn({ ...good, url: 'rediss://localhost:1' }));
    t.equal(res.unreachable.length, 1);
    t.match(res.unreachable[0], /localhost:1: .*ECONNREFUSED/);
  });
});

t.test('credentials are checked before start-up too; never echoed', async (t) => {
  const r = await startRedis({ password: 'right-password-123' });
  t.teardown(() => r.stop());
  const tls = { ca: c.caCert, cert: c.clientCert, key: c.clientKey };
  const good = redisConnectionSchema.parse({ url: r.url, tls, password: new Secret('right-password-123', 'env:P') });
  t.same(await preflightRedis(good), { unreachable: [] });
  const client = createRedisClient(good, { name: 'auth-test' });
  t.teardown(() => client.disconnect());
  await whenReady(client, 5000);
  t.equal(await client.ping(), 'PONG');
  const err = await preflightRedis(redisConnectionSchema.parse({ url: r.url, tls, password: new Secret('wrong-password-456', 'env:P') })).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof RedisSetupError);
  t.match((err as Error).message, /Redis refused the credentials \(WRONGPASS\): check username\/password/);
  t.notMatch((err as Error).message, /wrong-password-456/, 'the password is not in the message');
});

t.test('config: TLS is the default and contradictions are refused', async (t) => {
  const bad = (fields: Record<string, unknown>, pattern: RegExp) => {
    const r = redisSectionSchema.safeParse(fields);
    t.notOk(r.success, JSON.stringify(fields));
    t.match(r.error?.issues.map((i) => i.message).join('; '), pattern);
  };
  bad({ url: 'redis://h:6379' }, /plaintext: use rediss:\/\//);
  bad({ url: 'redis://h:6379', tls: { ca: c.caCert } }, /use rediss:\/\//);
  bad({ url: 'rediss://:pw@h:6379' }, /no password in the URL/);
  bad({}, /exactly one of url, sentinel or cluster/);
  bad({ url: 'rediss://h', cluster: { nodes: ['h:1'] } }, /exactly one/);
  bad({ cluster: { nodes: ['h:1'] } }, /tls is required/);
  bad({ url: 'rediss://h', tls: { cert: c.clientCert } }, /cert and key go together/);
  bad({ cluster: { nodes: ['h:1'] }, tls: {}, db: 2 }, /only has database 0/);
  bad({ url: 'rediss://h', tls: { ca: '/nonexistent/ca.pem' } }, /cannot read \/nonexistent\/ca\.pem: ENOENT/);
  const ok = redisSectionSchema.parse({ sentinel: { name: 'mymaster', nodes: ['s1:26379', '[::1]:26380'] }, tls: { ca: c.caCert } });
  t.same(ok.sentinel?.nodes, [{ host: 's1', port: 26379 }, { host: '::1', port: 26380 }]);
  t.equal(ok.sentinel?.tls, true, 'sentinels are reached over TLS by default');
  t.equal(ok.keyPrefix, 'keyhole:');
});
