// Audit events to a Redis stream (real redis-server, mTLS): every data request lands as a
// stream entry; MAXLEN ~ bounds the stream; while Redis is away the data path does not wait,
// the buffer is bounded and drops are counted; buffered events go out when Redis returns.
import t from 'tap';
import { once } from 'node:events';
import pino from 'pino';
import { startRedis, testClient } from '../helpers/redis.ts';
import { testCerts } from '../helpers/certs.ts';
import { baseYaml, dataUrl, filesProviderYaml, startKeyhole, tempFiles } from '../helpers/keyhole.ts';
import { AuditStream, streamFields } from '../../src/observe/audit-stream.ts';
import type { AuditEvent } from '../../src/observe/audit.ts';
import { Metrics } from '../../src/observe/metrics.ts';
import { auditStreamSchema, redisConnectionSchema } from '../../src/redis/schema.ts';

const c = testCerts();

function event(i: number): AuditEvent {
  return { id: `req-${i}`, kind: 'data', sub: 'alice', jti: 'j-1', org: undefined, provider: 'files', uri: 'local://files/a.txt', decision: 'allow', reason: 'ok', status: 200, bytes: 5, aborted: false, ms: 1.5, client: '127.0.0.1', tokenSource: 'header' };
}

const metricValue = async (m: Metrics, name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(await m.registry.metrics())?.[1] ?? 'NaN');

t.test('fields are flat strings; absent values are left out', async (t) => {
  const f = streamFields(event(1));
  t.equal(f[0], 'ts');
  const map = Object.fromEntries(Array.from({ length: f.length / 2 }, (_, i) => [f[2 * i], f[2 * i + 1]]));
  t.match(map, { id: 'req-1', kind: 'data', sub: 'alice', jti: 'j-1', status: '200', aborted: 'false', ms: '1.5', reason: 'ok' });
  t.notOk('org' in map);
});

t.test('Keyhole writes one stream entry per data request', async (t) => {
  const r = await startRedis();
  t.teardown(() => r.stop());
  const yaml = `redis:\n${r.yaml('  ', 'auditStream: { key: "audit:test", maxLen: 1000 }\ncommandTimeout: 10s')}\n${filesProviderYaml(tempFiles('as'))}`;
  const k = await startKeyhole(baseYaml(yaml));
  t.teardown(() => k.close());
  const reader = await testClient(r, { name: 'reader' });
  t.teardown(() => reader.disconnect());
  const token = await k.token({ scope: ['local://files/'] });
  const ok = await k.get(dataUrl('local://files/a.txt'), { authorization: `Bearer ${token}` });
  const denied = await k.get(dataUrl('local://files/a.txt'));
  t.equal(ok.status, 200);
  t.equal(denied.status, 401);
  // XREAD BLOCK waits for the entries instead of sleeping.
  const seen: Record<string, string>[] = [];
  let last = '0';
  while (seen.length < 2) {
    const res = (await reader.xread('BLOCK', 5000, 'STREAMS', 'audit:test', last)) as [string, [string, string[]][]][] | null;
    if (!res) break;
    for (const [id, fields] of res[0]![1]) {
      last = id;
      seen.push(Object.fromEntries(Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i]!, fields[2 * i + 1]!])));
    }
  }
  t.equal(seen.length, 2);
  t.match(seen.find((e) => e.id === ok.headers['x-request-id']), { sub: 'alice', provider: 'files', uri: 'local://files/a.txt', decision: 'allow', status: '200', bytes: '5' });
  t.match(seen.find((e) => e.id === denied.headers['x-request-id']), { decision: 'deny', reason: 'token_missing', status: '401' });
  t.notOk(JSON.stringify(seen).includes(token), 'the token never reaches the stream');
});

t.test('a limit alert is a stream entry of kind alert, beside the access events', async (t) => {
  const r = await startRedis();
  t.teardown(() => r.stop());
  const limits = 'limits:\n  alerts: { quota: [0.5] }\n  rules:\n    - name: annotator\n      bytes: { 1d: 8 }\n';
  const yaml = `redis:\n${r.yaml('  ', 'auditStream: { key: "audit:alerts", maxLen: 1000 }\ncommandTimeout: 10s')}\n${filesProviderYaml(tempFiles('as-alert'))}${limits}`;
  const k = await startKeyhole(baseYaml(yaml));
  t.teardown(() => k.close());
  const reader = await testClient(r, { name: 'reader' });
  t.teardown(() => reader.disconnect());
  const token = await k.token({ sub: 'alice', scope: ['local://files/'] });
  t.equal((await k.get(dataUrl('local://files/a.txt'), { authorization: `Bearer ${token}` })).status, 200, '5 of 8 bytes: past half');
  await k.server.current.limiter!.sync();
  const seen: Record<string, string>[] = [];
  let last = '0';
  while (!seen.some((e) => e.kind === 'alert')) {
    const res = (await reader.xread('BLOCK', 5000, 'STREAMS', 'audit:alerts', last)) as [string, [string, string[]][]][] | null;
    if (!res) break;
    for (const [id, fields] of res[0]![1]) {
      last = id;
      seen.push(Object.fromEntries(Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i]!, fields[2 * i + 1]!])));
    }
  }
  const alert = seen.find((e) => e.kind === 'alert');
  t.match(alert, { alert: 'quota', rule: 'annotator', limit: 'bytes', window: '1d', threshold: '0.5', max: '8', used: '5' });
  t.same(JSON.parse(alert?.who ?? 'null'), { sub: 'alice' }, 'whose counter, as JSON');
  t.ok(seen.some((e) => e.kind === 'data' && e.status === '200'), 'the access event went too');
});

t.test('MAXLEN ~ bounds the stream; Redis away: nothing blocks, the buffer is bounded, drops counted', async (t) => {
  const r = await startRedis();
  t.teardown(() => r.stop());
  const conn = redisConnectionSchema.parse({ url: r.url, tls: { ca: c.caCert, cert: c.clientCert, key: c.clientKey }, commandTimeout: '10s' });
  const metrics = new Metrics(false);
  const stream = await AuditStream.open(conn, auditStreamSchema.parse({ key: 'audit:bounded', maxLen: 10, buffer: 20, batch: 50 }), metrics, pino({ level: 'silent' }));
  t.teardown(() => stream.close());
  const reader = await testClient(r, { name: 'reader' });
  t.teardown(() => reader.disconnect());
  await new Promise<void>((resolve) => (stream['client'].status === 'ready' ? resolve() : stream['client'].once('ready', () => resolve())));

  // 500 events in bursts that fit the buffer.
  for (let burst = 0; burst < 25; burst++) {
    for (let i = 0; i < 20; i++) stream.push(event(burst * 20 + i));
    await stream.idle();
  }
  t.equal(await metricValue(metrics, 'keyhole_audit_stream_written_total'), 500);
  t.equal(await metricValue(metrics, 'keyhole_audit_stream_dropped_total'), 0);
  const len = await reader.xlen('audit:bounded');
  t.ok(len >= 10 && len < 500, `approximate MAXLEN keeps the stream bounded (XLEN ${len} for 500 events, maxLen 10)`);

  // Redis away: push returns at once, keeps at most `buffer` events, counts the rest.
  const closed = once(stream['client'], 'close');
  await r.kill();
  await closed;
  // push is synchronous: these 50 calls return before any I/O could happen.
  for (let i = 0; i < 50; i++) t.equal(stream.push(event(1000 + i)), undefined);
  t.equal(stream.pending, 20, 'buffer bounded');
  t.equal(await metricValue(metrics, 'keyhole_audit_stream_dropped_total'), 30, 'drops counted');

  // Redis back (empty): the buffered events go out by themselves.
  await r.restart();
  await stream.idle();
  const reader2 = await testClient(r, { name: 'reader2' });
  t.teardown(() => reader2.disconnect());
  t.equal(await reader2.xlen('audit:bounded'), 20, 'the 20 buffered events were written after Redis returned');
  const first = (await reader2.xrange('audit:bounded', '-', '+', 'COUNT', 1))[0]!;
  t.equal(first[1][first[1].indexOf('id') + 1], 'req-1000', 'oldest first');
});
