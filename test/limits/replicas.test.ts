// Two real Keyhole processes (`keyhole serve`) share one redis-server over mTLS for their
// limits. A scripted bulk download by one subject, spread over both replicas with parallel
// downloaders, is cut at its byte quota (the overshoot is measured against the documented
// tolerance) while another subject downloading at the same time is unaffected; the 50% alert
// fires once across both processes and reaches the webhook once. Then Redis is killed: both
// replicas answer 503 limits_unavailable, /readyz and keyhole_limits_store_up say so; Redis
// back, both serve again without a restart.
import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startRedis } from '../helpers/redis.ts';
import { spawnKeyhole, writeConfig, type KeyholeProcess } from '../helpers/spawn.ts';
import { request } from 'undici';
import { ADMIN_TOKEN, baseYaml, dataUrl, filesProviderYaml, tempFiles } from '../helpers/keyhole.ts';

const OBJECT = 64 * 1024;
const OBJECTS = 64;
const QUOTA = 1024 * 1024; // 16 objects
const SYNC_MS = 50;
const PARALLEL = 4; // downloaders per replica

t.test('two replicas hold one byte quota; the bulk downloader is cut, the other subject is not', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < OBJECTS; i++) files[`o${i}.bin`] = Buffer.alloc(OBJECT, i);
  const root = tempFiles('limits-replicas', files);

  const hooks: { alert: string; threshold: number; who: { sub?: string } }[] = [];
  const hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      hooks.push(JSON.parse(body));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => hook.close(() => r())));

  const yaml = baseYaml(
    filesProviderYaml(root) +
      `redis:
${redis.yaml('  ', 'commandTimeout: 2s')}
limits:
  store: redis
  redis: { sync: ${SYNC_MS}ms, stale: 500ms }
  alerts:
    quota: [0.5]
    webhook: { url: 'http://127.0.0.1:${(hook.address() as AddressInfo).port}/alerts', timeout: 1s }
  rules:
    - name: annotator
      bytes: { 1h: ${QUOTA} }
`,
    { log: '{ level: info, audit: true }' },
  );
  const file = writeConfig(yaml);
  const [a, b] = await Promise.all([spawnKeyhole(yaml, { file }), spawnKeyhole(yaml, { file })]);
  t.teardown(async () => {
    await Promise.all([a.stop(), b.stop()]);
  });
  await Promise.all([a, b].map((k) => k.waitForLog((l) => l.msg === 'redis limits store is up', 20_000, 'limits store up')));

  const mallory = { authorization: `Bearer ${await a.token({ sub: 'mallory' })}` };
  const alice = { authorization: `Bearer ${await a.token({ sub: 'alice' })}` };

  // Mallory: PARALLEL downloaders on each replica take distinct objects until refused.
  let next = 0;
  let served = 0;
  const refusedBy = new Set<string>();
  const statuses: number[] = [];
  const downloader = async (k: KeyholeProcess, name: string) => {
    for (;;) {
      const i = next++;
      if (i >= OBJECTS) return;
      const res = await k.get(dataUrl(`local://files/o${i}.bin`), { headers: mallory });
      statuses.push(res.status);
      if (res.status === 200) {
        t.equal(res.body.length, OBJECT);
        served += res.body.length;
      } else {
        t.equal(res.status, 429, `${name}: refused with 429`);
        t.equal(JSON.parse(res.body.toString()).error, 'quota_exceeded');
        t.ok(Number(res.headers['retry-after']) > 0, 'with Retry-After');
        refusedBy.add(name);
        return;
      }
    }
  };
  // Alice, at the same time, on both replicas: never refused.
  const aliceStatuses: number[] = [];
  const aliceLoop = async () => {
    for (let i = 0; i < 8; i++) aliceStatuses.push((await (i % 2 ? a : b).get(dataUrl(`local://files/o${i}.bin`), { headers: alice })).status);
  };
  await Promise.all([...Array.from({ length: PARALLEL }, () => downloader(a, 'A')), ...Array.from({ length: PARALLEL }, () => downloader(b, 'B')), aliceLoop()]);

  const overshoot = served - QUOTA;
  // Finish rule: every download admitted before the quota was reached completes. At most the
  // downloads in flight when it was reached (2 × PARALLEL), plus what the other replica had
  // counted but not yet written (one sync's worth), may pass it.
  const tolerance = 2 * PARALLEL * OBJECT;
  const summary = `bulk download over 2 replicas × ${PARALLEL} parallel: quota ${QUOTA} B, served ${served} B (${served / OBJECT} objects), overshoot ${overshoot} B = ${(overshoot / OBJECT).toFixed(1)} objects (tolerance ${tolerance / OBJECT} objects: the downloads in flight)`;
  t.comment(summary);
  console.log(summary);
  t.ok(served >= QUOTA, 'served at least the quota');
  t.ok(overshoot <= tolerance, `overshoot within the documented tolerance`);
  t.same([...refusedBy].sort(), ['A', 'B'], 'refused on both replicas');
  t.ok(aliceStatuses.every((s) => s === 200), `alice unaffected: ${aliceStatuses.join(' ')}`);

  // Once refused, refused everywhere.
  for (const k of [a, b]) t.equal((await k.get(dataUrl('local://files/o63.bin'), { headers: mallory })).status, 429);

  // One alert for 50%, from one of the two processes, and one POST.
  await new Promise((r) => setTimeout(r, 3 * SYNC_MS + 500));
  const alertLines = [...a.logs, ...b.logs].filter((l) => l.msg === 'alert' && l.alert !== undefined && (l.alert as { who: { sub: string } }).who.sub === 'mallory');
  t.equal(alertLines.length, 1, 'one alert line across both replicas');
  t.match(alertLines[0], { alert: { alert: 'quota', rule: 'annotator', limit: 'bytes', threshold: 0.5, max: QUOTA } });
  t.equal(hooks.filter((h) => h.who.sub === 'mallory').length, 1, 'one webhook POST');
  t.match(hooks[0], { kind: 'alert', alert: 'quota', threshold: 0.5 });

  // The admin API of either replica reads the one count.
  const usage = JSON.parse((await fetchAdmin(b, '/admin/usage?sub=mallory')).text) as { counters: { limit: string; value: number }[] };
  t.equal(usage.counters.find((c) => c.limit === 'bytes')?.value, served, 'usage through B: every byte served by A and B');

  // Redis killed: fail closed on both replicas, visible in readiness and metrics.
  await redis.kill();
  for (const k of [a, b]) {
    let status = 0;
    const until = Date.now() + 10_000;
    while (status !== 503 && Date.now() < until) status = (await k.get(dataUrl('local://files/o1.bin'), { headers: alice })).status;
    t.equal(status, 503, 'Redis down: 503');
    const res = await k.get(dataUrl('local://files/o1.bin'), { headers: alice });
    t.equal(JSON.parse(res.body.toString()).error, 'limits_unavailable');
    const ready = await k.adminGet('/readyz');
    t.equal(ready.status, 503, 'not ready');
    t.match(JSON.parse(ready.text), { ready: false, revocation: true, limits: false });
    t.match((await k.adminGet('/metrics')).text, /^keyhole_limits_store_up 0$/m);
    t.match((await k.adminGet('/metrics')).text, /^keyhole_limits_unavailable_total\{action="denied"\} [1-9]/m);
  }
  await redis.restart();
  for (const k of [a, b]) {
    let status = 0;
    const until = Date.now() + 15_000;
    while (status !== 200 && Date.now() < until) {
      status = (await k.get(dataUrl('local://files/o1.bin'), { headers: alice })).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    t.equal(status, 200, 'Redis back: served again, no restart');
    t.equal((await k.adminGet('/readyz')).status, 200, 'ready again');
    t.match((await k.adminGet('/metrics')).text, /^keyhole_limits_store_up 1$/m);
  }
});

async function fetchAdmin(k: KeyholeProcess, path: string): Promise<{ status: number; text: string }> {
  const res = await request(k.admin + path, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return { status: res.statusCode, text: await res.body.text() };
}
