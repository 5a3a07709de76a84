// How an upstream body ends, and what the client is told. A body framed by the closing of
// the connection (no Content-Length, not chunked: HTTP/1.0 servers, CGI, `Connection:
// close`) is whole when the upstream closes cleanly, and must end for the client then; a
// body cut short (fewer bytes than its Content-Length, or a connection reset instead of a
// close) must never end as if complete. Python's http.server (HTTP/1.0, CGI output framed
// by the close; files with Content-Length then close) is the real peer; a raw server plays
// the exact closes and resets.
import t, { type Test as Tap } from 'tap';
import type { Socket } from 'node:net';
import { startPythonHttpServer } from '../helpers/real-servers.ts';
import { startRawUpstream } from '../helpers/upstream.ts';
import { keyholeFor } from './pair.ts';

const SIZE = 1536 * 1024;
const payload = Buffer.alloc(SIZE);
for (let i = 0; i < SIZE; i++) payload[i] = (i * 31 + 7) % 251;

// A CGI script answering with the payload, framed by the close (the server is HTTP/1.0).
const CGI = `#!/usr/bin/python3
import sys
sys.stdout.write("Content-Type: application/octet-stream\\r\\n\\r\\n")
sys.stdout.flush()
data = bytes((i * 31 + 7) % 251 for i in range(${SIZE}))
sys.stdout.buffer.write(data)
sys.stdout.buffer.flush()
`;

t.test("Python's http.server (HTTP/1.0): close-framed and Content-Length answers end for the client", async (t) => {
  const py = await startPythonHttpServer(t, { 'file.bin': payload }, { 'payload.py': CGI });
  const { fetch } = await keyholeFor(t, py.origin);
  for (const [path, framing] of [
    ['cgi-bin/payload.py', 'framed by the close'],
    ['file.bin', 'Content-Length, then close'],
  ] as const) {
    for (const slow of [false, true]) {
      const label = `${path} (${framing})${slow ? ', slow client' : ''}`;
      const r = await fetch(path, { slow });
      t.equal(r.status, 200, `${label}: 200`, { body: r.body.subarray(0, 300).toString(), audit: r.audit });
      t.notOk(r.cut, `${label}: the answer ends`);
      t.ok(r.body.equals(payload), `${label}: the whole body (${r.body.length} of ${SIZE} bytes)`);
      t.match(r.audit, { reason: 'ok', aborted: false, bytes: SIZE }, `${label}: audited as served`);
    }
    const head = await fetch(path, { method: 'HEAD' });
    t.equal(head.status, 200, `HEAD ${path}: 200`);
    t.equal(head.body.length, 0);
    t.notOk(head.cut, `HEAD ${path}: the answer ends`);
    t.match(head.audit, { reason: 'ok', aborted: false });
  }
});

type Answer = (socket: Socket, method: string) => void;

/** A raw upstream: each path answers with exactly the bytes, closes and resets given. */
const rawUpstream = async (t: Tap, answers: Record<string, Answer>) => (await startRawUpstream(t, (socket, method, path) => answers[path]!(socket, method))).origin;

const part1 = payload.subarray(0, 100_000);
const part2 = payload.subarray(100_000, 300_000);
const whole = payload.subarray(0, 300_000);

t.test('HTTP/1.1 with Connection: close and no length: the close ends the body', async (t) => {
  const origin = await rawUpstream(t, {
    close: (s, method) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n');
      if (method === 'HEAD') return void s.end();
      s.write(part1);
      setTimeout(() => s.end(part2), 20);
    },
    'length-then-fin': (s, method) => {
      // The whole declared body and the FIN in one write.
      s.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${whole.length}\r\n\r\n`), method === 'HEAD' ? Buffer.alloc(0) : whole]));
    },
  });
  const { fetch } = await keyholeFor(t, origin);
  for (const path of ['close', 'length-then-fin']) {
    for (const slow of [false, true]) {
      const r = await fetch(path, { slow });
      const label = `${path}${slow ? ', slow client' : ''}`;
      t.equal(r.status, 200);
      t.notOk(r.cut, `${label}: the answer ends`);
      t.ok(r.body.equals(whole), `${label}: the whole body (${r.body.length} bytes)`);
      t.match(r.audit, { reason: 'ok', aborted: false, bytes: whole.length });
    }
    const head = await fetch(path, { method: 'HEAD' });
    t.equal(head.status, 200);
    t.notOk(head.cut, `HEAD ${path}: the answer ends`);
    t.match(head.audit, { reason: 'ok', aborted: false });
  }
});

t.test('a body cut short is never ended as complete', async (t) => {
  const origin = await rawUpstream(t, {
    // Fewer bytes than the Content-Length, then a clean close.
    'short-then-fin': (s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${whole.length}\r\n\r\n`);
      s.end(part1);
    },
    // Framed by the close, and the connection reset rather than closed: the upstream
    // aborted (a crash, SO_LINGER 0): what arrived may be a part. nginx as a proxy says so
    // too: "recv() failed (104: Connection reset by peer) while reading upstream", and it
    // cuts its client's transfer.
    'close-framed-then-reset': (s) => {
      s.write('HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n');
      s.write(part1, () => setTimeout(() => s.resetAndDestroy(), 20));
    },
  });
  const { fetch } = await keyholeFor(t, origin);
  for (const path of ['short-then-fin', 'close-framed-then-reset']) {
    for (const slow of [false, true]) {
      const label = `${path}${slow ? ', slow client' : ''}`;
      const r = await fetch(path, { slow });
      t.equal(r.status, 200, `${label}: the head had gone out`);
      t.ok(r.cut, `${label}: the client sees a cut transfer (${r.body.length} bytes), not a complete one`);
      t.match(r.audit, { reason: 'upstream_error', aborted: true, decision: 'error' }, `${label}: audited as an upstream error`);
    }
  }
});
