// Alerts to a webhook, from a real Keyhole: a live webhook gets each alert once; a dead one
// (nothing listens), one that never answers and one that answers late change no data answer —
// not its status, not its bytes, not its time — and the queue stays bounded (drops counted).
import t, { type Test } from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ADMIN_TOKEN, auditFor, baseYaml, dataUrl, filesProviderYaml, startKeyhole, tempFiles, type Running } from '../helpers/keyhole.ts';
import { freePort } from '../helpers/redis.ts';

const SUBJECTS = 10;

async function hookServer(t: Test, answer: (res: import('node:http').ServerResponse) => void): Promise<{ url: string; bodies: Record<string, unknown>[]; auths: (string | undefined)[] }> {
  const bodies: Record<string, unknown>[] = [];
  const auths: (string | undefined)[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      bodies.push(JSON.parse(body));
      auths.push(req.headers.authorization);
      answer(res);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, bodies, auths };
}

async function keyhole(t: Test, url: string, extra = ''): Promise<Running> {
  const root = tempFiles('limits-hook', { 'a.bin': Buffer.alloc(4096, 1), 'b.bin': Buffer.alloc(4096, 2) });
  const k = await startKeyhole(
    baseYaml(
      filesProviderYaml(root) +
        `limits:
  redis: { sync: 20ms }
  alerts:
    quota: [0.5, 1]
    webhook: { url: '${url}', timeout: 500ms${extra} }
  rules:
    - name: annotator
      objects: { 1h: 2 }
`,
    ),
  );
  t.teardown(() => k.close());
  return k;
}

/** Every subject reads both objects (two alerts each: 50% and 100%); each answer timed. */
async function readAll(k: Running): Promise<{ statuses: number[]; sizes: number[]; slowestMs: number }> {
  const statuses: number[] = [];
  const sizes: number[] = [];
  let slowestMs = 0;
  for (let i = 0; i < SUBJECTS; i++) {
    const h = { authorization: `Bearer ${await k.token({ sub: `user${i}`, scope: ['local://files/'] })}` };
    for (const f of ['a', 'b']) {
      const started = performance.now();
      const res = await k.get(dataUrl(`local://files/${f}.bin`), h);
      slowestMs = Math.max(slowestMs, performance.now() - started);
      statuses.push(res.status);
      sizes.push(res.body.length);
    }
    // the sync writes the objects and emits the alerts while the next subject reads
    await new Promise((r) => setTimeout(r, 30));
  }
  await k.server.current.limiter!.sync();
  return { statuses, sizes, slowestMs };
}

const counter = async (k: Running, result: string) => {
  const m = new RegExp(`^keyhole_limit_webhook_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(await k.server.current.metrics.registry.metrics());
  return m ? Number(m[1]) : 0;
};

const settled = async (k: Running, want: number) => {
  const until = Date.now() + 10_000;
  for (;;) {
    const n = (await counter(k, 'sent')) + (await counter(k, 'failed')) + (await counter(k, 'timeout')) + (await counter(k, 'dropped'));
    if (n >= want || Date.now() > until) return n;
    await new Promise((r) => setTimeout(r, 50));
  }
};

t.test('a live webhook gets each alert once, as JSON', async (t) => {
  const hook = await hookServer(t, (res) => res.writeHead(204).end());
  const k = await keyhole(t, hook.url, ", headers: { authorization: '${env:KEYHOLE_TEST_ADMIN}' }");
  const { statuses } = await readAll(k);
  t.ok(statuses.every((s) => s === 200));
  await settled(k, 2 * SUBJECTS);
  t.equal(hook.bodies.length, 2 * SUBJECTS, 'two alerts per subject (50% and 100%), one POST each');
  const user3 = hook.bodies.filter((b) => (b.who as { sub: string }).sub === 'user3');
  t.same(user3.map((b) => b.threshold).sort(), [0.5, 1]);
  t.match(user3[0], { kind: 'alert', alert: 'quota', rule: 'annotator', limit: 'objects', window: '1h', max: 2 });
  t.equal(await counter(k, 'sent'), 2 * SUBJECTS);
  t.ok(hook.auths.every((a) => a === ADMIN_TOKEN), 'with the configured header (a secret reference)');
  t.equal(k.logs.filter((l) => l.msg === 'alert' && l.alert !== undefined).length, 2 * SUBJECTS, 'and every alert in the log');
});

t.test('a dead, a silent and a slow webhook change no data answer', async (t) => {
  // Baseline: no webhook at all.
  const base = await keyhole(t, 'http://127.0.0.1:9/unused').then(async (k) => {
    k.server.current.limiter!.alertWebhook!.send = () => undefined;
    return readAll(k);
  });

  const dead = `http://127.0.0.1:${await freePort()}/hook`; // nothing listens
  const silent = await hookServer(t, () => undefined); // accepts, reads, never answers
  const slow = await hookServer(t, (res) => setTimeout(() => res.writeHead(200).end(), 400));
  for (const [name, url, extra] of [
    ['dead', dead, ''],
    ['silent', silent.url, ', queue: 3'],
    ['slow', slow.url, ''],
  ] as const) {
    const k = await keyhole(t, url, extra);
    const run = await readAll(k);
    t.same(run.statuses, base.statuses, `${name}: the same statuses`);
    t.same(run.sizes, base.sizes, `${name}: the same bytes`);
    t.ok(run.slowestMs < 400, `${name}: slowest data answer ${run.slowestMs.toFixed(1)} ms (webhook timeout 500 ms; baseline ${base.slowestMs.toFixed(1)} ms)`);
    const accounted = await settled(k, 2 * SUBJECTS);
    t.equal(accounted, 2 * SUBJECTS, `${name}: every alert accounted for (sent, failed, timed out or dropped)`);
    t.equal(k.logs.filter((l) => l.msg === 'alert' && l.alert !== undefined).length, 2 * SUBJECTS, `${name}: every alert still in the log`);
    if (name === 'dead') t.equal(await counter(k, 'failed'), 2 * SUBJECTS, 'dead: each POST failed fast');
    if (name === 'silent') {
      t.ok((await counter(k, 'dropped')) > 0, `silent: the queue of 3 overflowed (${await counter(k, 'dropped')} dropped)`);
      t.ok((await counter(k, 'timeout')) > 0, 'silent: POSTs timed out');
    }
    if (name === 'slow') t.equal(await counter(k, 'sent'), 2 * SUBJECTS, 'slow: all delivered, late');
    t.ok(k.logs.some((l) => l.msg === 'alert webhook failed: the alert is in the audit log only') || name === 'slow', `${name}: the failure is logged`);
  }
  // The data answers are audited as usual.
  const k = await keyhole(t, dead);
  const res = await k.get(dataUrl('local://files/a.bin'), { authorization: `Bearer ${await k.token({ sub: 'zed', scope: ['local://files/'] })}` });
  t.match(await auditFor(k, String(res.headers['x-request-id'])), { reason: 'ok', status: 200 });
});
