// Slow and stalling clients against a real Keyhole process: a slowloris head is cut by
// the headers timeout, a reader that stops reading costs bounded memory (Keyhole never
// buffers the object) and is closed by the idle timeout.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { testCerts } from '../helpers/certs.ts';
import { baseYaml, dataUrl, filesProviderYaml } from '../helpers/keyhole.ts';
import { Tally } from '../security/tally.ts';
import { startKeyholeChild } from './support/child.ts';

const tally = new Tally('slow clients');
const dir = mkdtempSync(join(tmpdir(), 'keyhole-slow-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const SIZE = 64 * 1024 * 1024;
writeFileSync(join(dir, 'big.bin'), Buffer.alloc(SIZE, 0x63));

const k = await startKeyholeChild(
  baseYaml(filesProviderYaml(dir), { server: 'timeouts: { headers: 1s, request: 5s, idle: 1500ms }', log: '{ level: silent }' }),
);
t.teardown(() => k.close());
const token = await k.token({ scope: ['local://files/'] });
const ca = readFileSync(testCerts().caCert);

function open(): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: k.port, servername: 'localhost', ca });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

t.test('slowloris: a head dribbled one byte at a time is cut by the headers timeout', async (t) => {
  const s = await open();
  const head = `GET ${dataUrl('local://files/big.bin')} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\nX-Pad: ${'a'.repeat(500)}`;
  let at = 0;
  let answer = '';
  s.on('data', (d: Buffer) => (answer += d.toString()));
  s.on('error', () => {});
  const drip = setInterval(() => {
    if (at < head.length && !s.destroyed) s.write(head[at++]!);
  }, 100);
  const started = Date.now();
  // The head would take ~60 s to finish; the server must end it long before.
  const closed = await new Promise<boolean>((resolve) => {
    s.once('close', () => resolve(true));
    setTimeout(() => resolve(false), 20_000).unref();
  });
  clearInterval(drip);
  t.ok(closed, `the server closed the connection (after ${((Date.now() - started) / 1000).toFixed(1)} s, ${at} of ${head.length} bytes sent)`);
  t.ok(at < head.length, 'before the head was complete');
  t.match(answer, /^HTTP\/1\.1 408/, 'with a 408');
  tally.record('slowloris', closed && at < head.length);
  s.destroy();
});

t.test('slow readers: memory stays bounded and the idle timeout closes them', async (t) => {
  const before = await k.stats();
  const readers: TLSSocket[] = [];
  for (let i = 0; i < 4; i++) {
    const s = await open();
    s.on('error', () => {});
    s.write(`GET ${dataUrl('local://files/big.bin')} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    // Read the head and a little, then stop reading altogether.
    await new Promise((r) => s.once('data', r));
    s.pause();
    readers.push(s);
  }
  const during = await k.stats();
  const growth = during.rss - before.rss;
  t.comment(`rss ${(before.rss / 1e6).toFixed(1)} → ${(during.rss / 1e6).toFixed(1)} MB with 4 stalled readers of ${SIZE / 1e6} MB objects`);
  t.ok(growth < 48 * 1024 * 1024, `bounded: rss grew ${(growth / 1e6).toFixed(1)} MB, not the ${(4 * SIZE) / 1e6} MB the objects weigh`);
  // A paused client cannot see the close, so watch the server side: each stalled reader
  // holds a socket and a file descriptor in the Keyhole process until the idle timeout.
  t.ok(k.fds() >= before.fds + 4, `the stalled readers hold their sockets and files (${k.fds()} fds)`);
  const until = Date.now() + 20_000;
  while (k.fds() > before.fds && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  const ok = k.fds() <= before.fds;
  t.ok(ok, 'every stalled reader was closed by the server (idle timeout)');
  const after = await k.stats();
  t.ok(after.fds <= before.fds + 1, `their descriptors were released (${before.fds} → ${after.fds})`);
  tally.record('slow readers', growth < 48 * 1024 * 1024 && ok);
  for (const s of readers) s.destroy();
});

t.test('hostile inputs tally', async (t) => tally.report(t));
