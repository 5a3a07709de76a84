// SIGTERM on a real `keyhole serve`: readiness turns false at once, nothing new is
// accepted, a long download in flight finishes whole, pools close, exit code 0 — and a
// request that outlives the drain timeout is cut, still with exit 0.
import t, { type Test } from 'tap';
import { connect } from 'node:net';
import { createHash } from 'node:crypto';
import { request } from 'undici';
import { dataUrl, tempFiles } from '../helpers/keyhole.ts';
import { opsYaml, spawnKeyhole } from '../helpers/spawn.ts';
import { httpProviderItem, startGatedUpstream } from '../helpers/upstream.ts';

// Real processes on a shared 2-core machine: generous, but bounded.
t.setTimeout(240000);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A gated upstream of `size` bytes and a Keyhole that drains within `drainTimeout`, both stopped on teardown. */
async function keyholeOverGate(t: Test, size: number, drainTimeout: string) {
  const up = await startGatedUpstream(size);
  t.teardown(() => up.close());
  const root = tempFiles('ops-data', { 'a.txt': 'hello\n' });
  const k = await spawnKeyhole(opsYaml(root, httpProviderItem('up', 'https://up.test/', `${up.origin}/`), { server: `drainTimeout: ${drainTimeout}` }));
  t.teardown(() => k.stop());
  /** starts the long download of `/big`, held open until `up.release()` */
  const download = async () => {
    const token = await k.token({ scope: ['https://up.test/'] });
    return request(k.base + dataUrl('https://up.test/big'), { headers: { authorization: `Bearer ${token}` }, dispatcher: k.dispatcher });
  };
  return { up, k, download };
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
  const { up, k, download } = await keyholeOverGate(t, 2 << 20, '30s');
  t.equal((await k.adminGet('/readyz')).status, 200, 'ready before the drain');

  const res = await download();
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
  const { up, k, download } = await keyholeOverGate(t, 1 << 20, '300ms');
  const res = await download();
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
