// SIGTERM on a real `keyhole serve`: readiness turns false at once, nothing new is
// accepted, a long download in flight finishes whole, pools close, exit code 0 — and a
// request that outlives the drain timeout is cut, still with exit 0.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { request } from 'undici';
import { dataPath, opsYaml, spawnKeyhole, startGatedUpstream } from './spawn.js';

// Real processes on a shared 2-core machine: generous, but bounded.
t.setTimeout(240000);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function config(upstream: string, drainTimeout: string): string {
  const root = mkdtempSync(join(tmpdir(), 'keyhole-ops-data-'));
  writeFileSync(join(root, 'a.txt'), 'hello\n');
  return opsYaml(
    root,
    `  - name: up
    kind: http
    match: https://up.test/
    baseUrl: ${upstream}/
    allowPrivateNetworks: true
`,
  ).replace('  tls: {', `  drainTimeout: ${drainTimeout}\n  tls: {`);
}

/** true when a TCP connection to the port is refused (nothing listens any more). */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

t.test('SIGTERM during a long download: readiness off, download finishes, exit 0', async (t) => {
  const up = await startGatedUpstream(2 << 20);
  t.teardown(() => up.close());
  const k = await spawnKeyhole(config(up.origin, '30s'));
  t.teardown(() => k.stop());
  const token = await k.token({ scope: ['https://up.test/'] });
  t.equal((await k.adminGet('/readyz')).status, 200, 'ready before the drain');

  const res = await request(k.base + dataPath('https://up.test/big'), { headers: { authorization: `Bearer ${token}` }, dispatcher: k.dispatcher });
  t.equal(res.statusCode, 200);
  const chunks: Buffer[] = [];
  res.body.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<void>((resolve, reject) => res.body.once('end', resolve).once('error', reject));

  k.child.kill('SIGTERM');
  await k.waitForLog((l) => l.msg === 'draining');
  const ready = await k.adminGet('/readyz');
  t.equal(ready.status, 503, '/readyz is false from the start of the drain');
  t.match(JSON.parse(ready.text), { ready: false, accepting: false });
  t.ok(await refused(k.dataPort), 'the data listener no longer accepts connections');
  t.equal(k.child.exitCode, null, 'still running while the download is in flight');

  up.release();
  await ended;
  const body = Buffer.concat(chunks);
  t.equal(body.length, up.body.length, 'the download finished whole');
  t.equal(sha(body), sha(up.body));
  t.same(await k.exited, { code: 0, signal: null }, 'exit code 0');
  const drained = k.logs.find((l) => l.msg === 'drained');
  t.match(drained, { cut: 0 }, 'nothing was cut');
});

t.test('a request that outlives the drain timeout is cut; exit is still 0', async (t) => {
  const up = await startGatedUpstream(1 << 20);
  t.teardown(() => up.close());
  const k = await spawnKeyhole(config(up.origin, '300ms'));
  t.teardown(() => k.stop());
  const token = await k.token({ scope: ['https://up.test/'] });
  const res = await request(k.base + dataPath('https://up.test/big'), { headers: { authorization: `Bearer ${token}` }, dispatcher: k.dispatcher });
  t.equal(res.statusCode, 200);
  const outcome = new Promise<string>((resolve) => {
    res.body.on('data', () => undefined);
    res.body.once('end', () => resolve('ended'));
    res.body.once('error', () => resolve('aborted'));
  });
  k.child.kill('SIGTERM');
  t.equal(await outcome, 'aborted', 'the client sees an aborted body, never a short complete one');
  t.same(await k.exited, { code: 0, signal: null });
  t.match(k.logs.find((l) => l.msg === 'drained'), { cut: 1 });
  up.release();
});
