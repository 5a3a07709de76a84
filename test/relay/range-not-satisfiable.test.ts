// 416 Range Not Satisfiable: the client needs the status and the Content-Range (`bytes */N`
// tells it the real length), never the upstream's error page (docs/design.md: upstream
// 3xx/4xx/5xx bodies are never relayed). nginx is the real peer: it answers 416 with an
// HTML page of its own. A raw server plays a 416 whose body never ends.
import t from 'tap';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { startNginx } from '../helpers/real-servers.ts';
import { keyholeFor } from './pair.ts';

t.test("nginx's 416: status and Content-Range relayed, its error page is not", async (t) => {
  const nginx = await startNginx(t, '    location / { }', { 'small.bin': Buffer.alloc(1000, 7) });
  const { fetch } = await keyholeFor(t, nginx.origin);
  // What nginx answers directly: the page Keyhole must keep to itself.
  const direct = await fetch('small.bin', { headers: { range: 'bytes=0-9' } });
  t.equal(direct.status, 206, 'a satisfiable range still passes');
  t.equal(direct.body.length, 10);
  for (const method of ['GET', 'HEAD'] as const) {
    const r = await fetch('small.bin', { method, headers: { range: 'bytes=5000-' } });
    t.equal(r.status, 416, `${method}: 416`);
    t.equal(r.headers['content-range'], 'bytes */1000', `${method}: the Content-Range that names the real length`);
    t.equal(r.headers['content-length'], '0', `${method}: no body`);
    t.equal(r.body.length, 0, `${method}: nothing of nginx's page`);
    t.notOk(r.cut, `${method}: a clean answer`);
    t.equal(r.headers['x-content-type-options'], 'nosniff');
    t.match(r.audit, { status: 416, reason: 'range_not_satisfiable', decision: 'allow', bytes: 0 });
  }
  // The connection the 416 came on is still good for the next request.
  const after = await fetch('small.bin');
  t.equal(after.status, 200);
  t.equal(after.body.length, 1000);
});

t.test('a 416 whose body never ends: answered at once, the upstream body cut', async (t) => {
  let closed!: () => void;
  const upstreamClosed = new Promise<void>((r) => (closed = r));
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => closed());
    socket.once('data', () => {
      socket.write('HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */1000\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n');
      socket.write('1a\r\n<h1>internal-host says</h1>\r\n');
      // ... and nothing more, never the last chunk.
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const { fetch } = await keyholeFor(t, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  const r = await fetch('x', { headers: { range: 'bytes=5000-' } });
  t.equal(r.status, 416);
  t.equal(r.headers['content-range'], 'bytes */1000');
  t.equal(r.body.length, 0);
  t.notOk(r.cut);
  t.match(r.audit, { reason: 'range_not_satisfiable', status: 416 });
  await upstreamClosed;
  t.pass('the unbounded upstream body was cut, not waited for');
});
