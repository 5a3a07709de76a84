// 10,000 aborted downloads against a real Keyhole process: clients vanish before the
// response head, after it, and mid-body, on the http, local and redis providers. Afterwards
// the Keyhole process holds no more file descriptors or sockets than after warm-up, its
// heap after GC has not grown, and the upstream has no request left open.
import t from 'tap';
import { createServer, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { connect, type Socket } from 'node:net';
import { baseYaml, dataUrl, localProviderItem } from '../helpers/keyhole.ts';
import { httpProviderItem } from '../helpers/upstream.ts';
import { Tally } from '../security/tally.ts';
import { redisProviderItem, startRedis, testClient } from '../helpers/redis.ts';
import { startKeyholeChild } from './support/child.ts';

const ABORTS = Number(process.env.ABORT_STORM ?? 10_000);
const CONCURRENCY = 64;
const tally = new Tally('abort storm');
// 10,000 connections on a shared 2-core machine: allow more than the suite's per-file limit.
t.setTimeout(480_000);

const big = Buffer.alloc(256 * 1024, 0x61);
const dir = mkdtempSync(join(tmpdir(), 'keyhole-storm-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'big.bin'), big);

// The upstream counts responses still open: started and neither finished nor closed.
const open = new Set<ServerResponse>();
const upstream = createServer((req, res) => {
  open.add(res);
  res.on('close', () => open.delete(res));
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': big.length });
  // Trickle in 64 KiB pieces so aborts land while the upstream is mid-body.
  let at = 0;
  const pump = () => {
    while (at < big.length) {
      const piece = big.subarray(at, at + 65536);
      at += piece.length;
      if (!res.write(piece)) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
});
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
t.teardown(() => new Promise<void>((r) => {
  upstream.closeAllConnections();
  upstream.close(() => r());
}));
const upPort = (upstream.address() as AddressInfo).port;
const upstreamConnections = () => new Promise<number>((r) => upstream.getConnections((_e, n) => r(n)));

// The redis provider (landed since): a real redis-server over mTLS holds the same object.
const redis = await startRedis();
t.teardown(() => redis.stop());
const seed = await testClient(redis, { name: 'storm-seed' });
await seed.set('big.bin', big);
seed.disconnect();

const POOL = 16;
const k = await startKeyholeChild(
  baseYaml(
    `providers:\n${httpProviderItem('up', 'https://up.test/', `http://127.0.0.1:${upPort}/`, `connections: ${POOL}`)}` +
      localProviderItem('files', dir) +
      redisProviderItem(redis, { extra: 'contentType: application/octet-stream' }),
    { log: '{ level: silent, audit: false }' },
  )
    // Plain HTTP keeps 10,000 connections cheap on a 2-core CI machine: what is measured
    // is the relay and the providers; TLS aborts are covered by test/fault/*.test.ts.
    .replace(/ {2}tls: \{[^\n]*\n/, '  insecurePlainHttp: true\n'),
);
t.teardown(() => k.close());
const token = await k.token({ scope: ['https://up.test/', 'local://files/', 'redis://0/'] });

type Mode = 'before-head' | 'after-head' | 'mid-body' | 'complete';

/** One download over a fresh TLS connection, cut by the client at the chosen moment. */
function download(uri: string, mode: Mode): Promise<number> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ host: '127.0.0.1', port: k.port });
    let got = 0;
    const done = () => {
      socket.destroy();
      resolve(got);
    };
    socket.on('error', () => resolve(got));
    socket.on('close', () => resolve(got));
    socket.once('connect', () => {
      socket.write(`GET ${dataUrl(uri)} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`);
      if (mode === 'before-head') setImmediate(done);
    });
    socket.on('data', (d: Buffer) => {
      got += d.length;
      if (mode === 'after-head') done();
      else if (mode === 'mid-body' && got > 64 * 1024) done();
    });
  });
}

async function storm(n: number, modes: Mode[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const uri = ['https://up.test/big.bin', 'local://files/big.bin', 'redis://0/big.bin'][i % 3]!;
      await download(uri, modes[i % modes.length]!);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

/** Waits (polling the child's own counts) until its sockets settle, at most 15 s. */
async function settled(maxSockets: number) {
  const until = Date.now() + 15_000;
  for (;;) {
    const s = await k.stats();
    if ((s.sockets <= maxSockets && open.size === 0) || Date.now() > until) return s;
    await new Promise((r) => setTimeout(r, 200));
  }
}

t.test(`${ABORTS} aborted downloads leave no descriptor, socket, upstream request or heap behind`, async (t) => {
  // Warm-up: TLS, pools, JIT, caches — what a running Keyhole holds anyway.
  await storm(200, ['complete', 'mid-body', 'after-head', 'before-head']);
  const before = await settled(POOL + 4);
  const upBefore = await upstreamConnections();
  t.comment(`before: fds ${before.fds}, sockets ${before.sockets}, handles ${before.handles}, heap ${(before.heapUsed / 1e6).toFixed(1)} MB, rss ${(before.rss / 1e6).toFixed(1)} MB, upstream connections ${upBefore}`);

  const started = Date.now();
  await storm(ABORTS, ['before-head', 'after-head', 'mid-body']);
  const seconds = (Date.now() - started) / 1000;
  const after = await settled(before.sockets);
  const upAfter = await upstreamConnections();
  t.comment(`after ${ABORTS} aborts in ${seconds.toFixed(1)} s: fds ${after.fds}, sockets ${after.sockets}, handles ${after.handles}, heap ${(after.heapUsed / 1e6).toFixed(1)} MB, rss ${(after.rss / 1e6).toFixed(1)} MB, upstream connections ${upAfter}, upstream responses open ${open.size}`);

  t.equal(open.size, 0, 'no upstream response is left open');
  t.ok(upAfter <= POOL, `upstream connections within the pool bound (${upAfter} ≤ ${POOL})`);
  t.ok(after.sockets <= before.sockets, `no socket left in the Keyhole process (${after.sockets} ≤ ${before.sockets})`);
  // The pool may have opened a few more keep-alive connections (within its bound): those
  // are the only descriptors allowed to be new.
  const allowed = before.fds + Math.max(0, upAfter - upBefore) + 2;
  t.ok(after.fds <= allowed, `no file descriptor leaked (${after.fds} ≤ ${allowed}; ${before.fds} before)`);
  t.ok(k.fds() <= allowed, 'the same count read from /proc/PID/fd outside the process');
  const heapGrowth = after.heapUsed - before.heapUsed;
  t.ok(heapGrowth < 8 * 1024 * 1024, `heap after GC grew ${(heapGrowth / 1e6).toFixed(2)} MB (< 8 MB)`);
  tally.tried += ABORTS - 1;
  tally.record('abort storm leaks', open.size === 0 && after.sockets <= before.sockets && after.fds <= allowed && heapGrowth < 8 * 1024 * 1024);

  // And the process still serves a whole object correctly afterwards.
  const whole = await download('local://files/big.bin', 'complete');
  t.ok(whole > big.length, 'a complete download still works');
  t.ok((await download('redis://0/big.bin', 'complete')) > big.length, 'and from redis');
  t.ok((await download('https://up.test/big.bin', 'complete')) > big.length, 'and from the http upstream');
  t.comment(`upstream connections: ${upBefore} before, ${upAfter} after (pool bound ${POOL})`);
});

t.test('hostile inputs tally', async (t) => tally.report(t));
