// Raw upstreams for what no packaged server does on demand, each behaving like the worst
// real one it stands for: an unsolicited 100 Continue before the answer (IIS and some Java
// servers send one to requests that never asked), 103 Early Hints (Node's and Go's servers),
// trailers after a chunked body (gRPC-web gateways, Go's servers), a body framed only by the
// close (HTTP/1.0-style servers and CGI), and a FIN right after a Content-Length body without
// `Connection: close` (Django's runserver, nginx at keepalive_requests). Files are streamed
// from a folder, one answer per connection, Range ignored (a whole 200 is a valid answer).
import { createReadStream, statSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Test } from 'tap';

export type Quirk = 'continue-100' | 'early-hints' | 'trailers' | 'eof-delimited' | 'fin-after-body';

const TYPE = 'Content-Type: application/octet-stream\r\n';

/** Resolves when the socket has room again, or is gone. */
function drained(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/** Writes the file's bytes as they are read, waiting for the socket when it is full. */
async function stream(socket: Socket, path: string, chunked: boolean): Promise<void> {
  for await (const part of createReadStream(path, { highWaterMark: 65536 }) as AsyncIterable<Buffer>) {
    if (socket.destroyed) return;
    let ok: boolean;
    if (chunked) {
      socket.write(`${part.length.toString(16)}\r\n`);
      socket.write(part);
      ok = socket.write('\r\n'); // false when anything written is still waiting
    } else ok = socket.write(part);
    if (!ok) await drained(socket);
  }
}

async function answer(quirk: Quirk, socket: Socket, method: string, path: string, size: number): Promise<void> {
  const body = method !== 'HEAD';
  switch (quirk) {
    case 'continue-100':
    case 'early-hints':
      socket.write(quirk === 'continue-100' ? 'HTTP/1.1 100 Continue\r\n\r\n' : 'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n');
      socket.write(`HTTP/1.1 200 OK\r\n${TYPE}Content-Length: ${size}\r\nConnection: close\r\n\r\n`);
      break;
    case 'trailers':
      socket.write(`HTTP/1.1 200 OK\r\n${TYPE}Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\nConnection: close\r\n\r\n`);
      if (body) {
        await stream(socket, path, true);
        socket.write('0\r\nX-Checksum: not-checked\r\n\r\n');
      }
      return void socket.end();
    case 'eof-delimited':
      socket.write(`HTTP/1.1 200 OK\r\n${TYPE}Connection: close\r\n\r\n`);
      break;
    case 'fin-after-body':
      // No Connection: close: the FIN comes unannounced, right after the last byte.
      socket.write(`HTTP/1.1 200 OK\r\n${TYPE}Content-Length: ${size}\r\n\r\n`);
      break;
  }
  if (body) await stream(socket, path, false);
  socket.end();
}

/** One quirk server serving the files of `dir` by name (`/name`). */
export async function startQuirkServer(t: Test, quirk: Quirk, dir: string): Promise<{ origin: string }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined); // a client that leaves mid-body
    let seen = Buffer.alloc(0);
    socket.on('data', function onData(c: Buffer) {
      seen = Buffer.concat([seen, c]);
      const end = seen.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      const [method = 'GET', target = '/'] = seen.subarray(0, end).toString('latin1').split(' ');
      const name = target.slice(1).split('?')[0]!;
      let size: number;
      try {
        if (!/^[\w.-]+$/.test(name)) throw new Error('not a plain name');
        size = statSync(join(dir, name)).size;
      } catch {
        return void socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      }
      answer(quirk, socket, method, join(dir, name), size).catch(() => socket.destroy());
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
