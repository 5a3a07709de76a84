// A hostile or broken upstream, played by a real TCP server that writes exactly the bytes
// each fault needs: resets and closes mid-body, stalls before and during the body,
// garbage heads, 5xx with secrets in the body. The client must never see a clean short
// 200, timeouts must fire and free the upstream socket, and nothing of the upstream's
// error body reaches the client.
import t from 'tap';
import type { Socket } from 'node:net';
import { request } from 'undici';
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { testCerts } from '../helpers/certs.ts';
import { auditFor, baseYaml, dataUrl, startKeyhole, type Running } from '../helpers/keyhole.ts';
import { httpProviderItem, startRawUpstream } from '../helpers/upstream.ts';
import { Tally } from '../security/tally.ts';

const tally = new Tally('upstream faults');

type Fault = (socket: Socket) => void;
const faults = new Map<string, Fault>();
// One request per connection: every fault closes its socket or is cut by a timeout.
const raw = await startRawUpstream(t, (socket, method, path) => {
  const fault = method === 'GET' ? faults.get(path.replace(/^files\//, '')) : undefined;
  if (fault) fault(socket);
  else socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
});

const LEN = 1_000_000;
const body = (n: number) => Buffer.alloc(n, 0x62);
faults.set('reset-cl', (s) => {
  s.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${LEN}\r\n\r\n`);
  s.write(body(100_000), () => s.resetAndDestroy());
});
faults.set('reset-chunked', (s) => {
  s.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n');
  s.write(`${(50_000).toString(16)}\r\n`);
  s.write(body(50_000));
  s.write('\r\n', () => s.resetAndDestroy());
});
faults.set('fin-cl', (s) => {
  s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${LEN}\r\n\r\n`);
  s.end(body(10_000));
});
faults.set('fin-chunked', (s) => {
  s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
  s.end(`${(1000).toString(16)}\r\n${body(1000).toString()}\r\n`);
});
faults.set('stall-head', () => {});
faults.set('stall-body', (s) => {
  s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${LEN}\r\n\r\n`);
  s.write(body(1000));
});
faults.set('garbage', (s) => s.end('HELLO THERE\r\n\r\n'));
faults.set('garbage-binary', (s) => s.end(Buffer.from([0, 1, 2, 3, 0xff, 0xfe, 13, 10, 13, 10])));
faults.set('bad-length', (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nxyz'));
faults.set('two-lengths', (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nxyz'));
faults.set('cl-and-te', (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n'));
faults.set('nul-header', (s) => s.end('HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 3\r\n\r\nxyz'));
faults.set('bad-chunk', (s) => s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nxyz\r\n0\r\n\r\n'));
faults.set('huge-head', (s) => s.end(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(200_000)}\r\nContent-Length: 3\r\n\r\nxyz`));
faults.set('http09', (s) => s.end('just bytes, no status line'));
faults.set('500', (s) => s.end('HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 38\r\n\r\ninternal-secret: db password is hunter'));
faults.set('503-unbounded', (s) => {
  s.write('HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\n\r\n<h1>internal-secret</h1>');
  // never ends: an unbounded error body is cut, not drained
});
faults.set('101', (s) => s.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: Upgrade\r\n\r\n'));
faults.set('smuggled-second-response', (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxyzHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret'));

let k: Running;
let token: string;
t.before(async () => {
  const provider = httpProviderItem('raw', 'https://raw.test/', `${raw.origin}/files/`, 'connections: 4\ntimeouts: { connect: 1s, headers: 400ms, body: 400ms }');
  k = await startKeyhole(baseYaml(`providers:\n${provider}`));
  token = await k.token({ scope: ['https://raw.test/'] });
});
t.teardown(() => k.close());

/** Fetches through Keyhole and reads the whole body; reports an aborted transfer as such. */
async function fetchFault(name: string) {
  let res;
  try {
    res = await request(k.base + dataUrl(`https://raw.test/${name}`), { dispatcher: k.dispatcher, headers: { authorization: `Bearer ${token}` } });
  } catch {
    // The connection died before a complete head: an aborted transfer too.
    return { status: 0, headers: {} as Record<string, string | string[] | undefined>, received: 0, aborted: true, text: '' };
  }
  let received = 0;
  let aborted = false;
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of res.body) {
      received += (chunk as Buffer).length;
      if (chunks.length < 4) chunks.push(chunk as Buffer);
    }
  } catch {
    aborted = true;
  }
  return { status: res.statusCode, headers: res.headers, received, aborted, text: Buffer.concat(chunks).toString('latin1') };
}

for (const name of ['reset-cl', 'reset-chunked', 'fin-cl', 'fin-chunked', 'stall-body']) {
  t.test(`${name}: the client sees an aborted transfer, never a clean short 200`, async (t) => {
    const r = await fetchFault(name);
    t.equal(r.status, 200, 'the head had already gone out');
    t.ok(r.aborted, `the transfer is aborted after ${r.received} bytes`);
    const audit = await auditFor(k, r.headers['x-request-id'] as string, 3000);
    t.match(audit, { reason: name === 'stall-body' ? 'upstream_timeout' : 'upstream_error', aborted: true });
    tally.record(name, r.aborted);
  });
}

const refused: [string, number, string][] = [
  ['stall-head', 504, 'upstream_timeout'],
  ['garbage', 502, 'upstream_error'],
  ['garbage-binary', 502, 'upstream_error'],
  ['bad-length', 502, 'upstream_error'],
  ['two-lengths', 502, 'upstream_error'],
  ['cl-and-te', 502, 'upstream_error'],
  ['nul-header', 502, 'upstream_error'],
  ['huge-head', 502, 'upstream_error'],
  ['http09', 502, 'upstream_error'],
  ['500', 502, 'upstream_status'],
  ['503-unbounded', 502, 'upstream_status'],
  ['101', 502, 'upstream_error'],
];
for (const [name, status, reason] of refused) {
  t.test(`${name}: ${status} ${reason}, nothing of the upstream's answer reaches the client`, async (t) => {
    const r = await fetchFault(name);
    t.equal(r.status, status);
    t.equal(JSON.parse(r.text).error, reason);
    t.notMatch(r.text, /internal-secret|hunter|127\.0\.0\.1|raw\.test/, 'no upstream body, address or URI in the answer');
    tally.record(name, r.status === status && !/internal-secret|hunter/.test(r.text));
  });
}

t.test('bad-chunk: a chunked body that turns to garbage aborts the transfer', async (t) => {
  const r = await fetchFault('bad-chunk');
  t.ok(r.status === 502 || r.aborted, `refused (${r.status}) or aborted`);
  t.notOk(r.status === 200 && !r.aborted, 'never a clean 200');
  tally.record('bad-chunk', r.status === 502 || r.aborted);
});

t.test('smuggled second response: only the declared length is relayed, the rest is never served', async (t) => {
  const r = await fetchFault('smuggled-second-response');
  t.equal(r.status, 200);
  t.equal(r.text, 'xyz');
  // The next request on the pool must not be answered by the leftover bytes.
  const again = await fetchFault('500');
  t.notMatch(again.text, /secret/);
  tally.record('smuggled second response', r.text === 'xyz' && !/secret/.test(again.text));
});

t.test('pipelined requests on a connection that dies: both are aborted upstream and both audited', async (t) => {
  const audits = k.audits().length;
  const socket = connect({ host: '127.0.0.1', port: Number(new URL(k.base).port), servername: 'localhost', ca: readFileSync(testCerts().caCert) });
  socket.on('error', () => {});
  await new Promise((r) => socket.once('secureConnect', r));
  const get = (uri: string) => `GET ${dataUrl(uri)} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\n\r\n`;
  // The first stalls mid-body; the second waits its turn behind it, then the client vanishes.
  socket.write(get('https://raw.test/stall-body') + get('https://raw.test/stall-head'));
  await new Promise((r) => socket.once('data', r));
  socket.destroy();
  const until = Date.now() + 3000;
  while (k.audits().length < audits + 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  const fresh = k.audits().slice(audits);
  t.equal(fresh.length, 2, 'one audit event for each pipelined request');
  t.ok(fresh.every((a) => a.aborted === true), 'both recorded as aborted');
  tally.record('pipelined requests on a dying connection', fresh.length === 2);
});

t.test('after every fault, timeouts and aborts have freed the upstream sockets', async (t) => {
  const until = Date.now() + 5000;
  while (raw.openSockets() > 4 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  t.ok(raw.openSockets() <= 4, `upstream sockets still open: ${raw.openSockets()} (pool bound 4, all idle keep-alive)`);
});

t.test('hostile inputs tally', async (t) => tally.report(t));
