// Raw upstreams for what no packaged server does on demand, each behaving like the worst
// real one it stands for: 1xx before the answer (Node's and Go's servers send 103 Early
// Hints), trailers after a chunked body, a body framed only by the close (HTTP/1.0-style
// servers and CGI), and a FIN right after a Content-Length body without `Connection: close`
// (Django's and Python's servers, nginx at keepalive_requests).
import { createServer, type AddressInfo, type Socket } from 'node:net';
import type { Test } from 'tap';

export type Quirk = 'early-hints' | 'trailers' | 'eof-delimited' | 'fin-after-body';

function answer(quirk: Quirk, socket: Socket, method: string, body: Buffer): void {
  const head = method === 'HEAD';
  const type = 'Content-Type: application/octet-stream\r\n';
  switch (quirk) {
    case 'early-hints':
      socket.write('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n');
      socket.write(`HTTP/1.1 200 OK\r\n${type}Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
      if (!head) socket.write(body);
      return void socket.end();
    case 'trailers': {
      socket.write(`HTTP/1.1 200 OK\r\n${type}Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\nConnection: close\r\n\r\n`);
      if (!head) for (let at = 0; at < body.length; at += 65536) {
        const part = body.subarray(at, at + 65536);
        socket.write(`${part.length.toString(16)}\r\n`);
        socket.write(part);
        socket.write('\r\n');
      }
      return void socket.end(head ? '' : '0\r\nX-Checksum: not-checked\r\n\r\n');
    }
    case 'eof-delimited':
      socket.write(`HTTP/1.1 200 OK\r\n${type}Connection: close\r\n\r\n`);
      if (!head) socket.write(body);
      return void socket.end();
    case 'fin-after-body':
      // No Connection: close: the FIN comes unannounced, right after the last byte.
      socket.write(`HTTP/1.1 200 OK\r\n${type}Content-Length: ${body.length}\r\n\r\n`);
      if (!head) socket.write(body);
      return void socket.end();
  }
}

/** One quirk server serving `files` by path (`/name`), one answer per connection. */
export async function startQuirkServer(t: Test, quirk: Quirk, files: Record<string, Buffer>): Promise<{ origin: string }> {
  const server = createServer((socket) => {
    let seen = Buffer.alloc(0);
    socket.on('error', () => undefined);
    socket.on('data', function onData(c: Buffer) {
      seen = Buffer.concat([seen, c]);
      const end = seen.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      const [method = 'GET', path = '/'] = seen.subarray(0, end).toString('latin1').split(' ');
      const body = files[path.slice(1).split('?')[0]!];
      if (!body) return void socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      answer(quirk, socket, method, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
