// A raw TLS client for the real-world matrix: it can stop reading for a while (a slow
// annotator's connection, so that Keyhole's writes back up and it pauses its upstream
// read), or leave mid-body, and it checks the framing itself instead of trusting a library.
import { createHash } from 'node:crypto';
import { connect, type TLSSocket } from 'node:tls';

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** the body was complete by its own framing (Content-Length met, or the last chunk seen) */
  complete: boolean;
}

export interface RawOptions {
  port: number;
  ca: Buffer;
  path: string;
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  /** stop reading right after the request, for this long */
  pauseMs?: number;
  /** leave (destroy the socket) after this many body bytes */
  abortAfter?: number;
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export function rawRequest(o: RawOptions): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = connect({ host: '127.0.0.1', port: o.port, servername: 'localhost', ca: o.ca });
    const chunks: Buffer[] = [];
    let received = 0;
    let headEnd = -1;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      const all = Buffer.concat(chunks);
      if (headEnd < 0) return reject(new Error(`no complete head (${all.length} bytes)`));
      resolve(parse(all, headEnd, o.method === 'HEAD'));
    };
    socket.on('secureConnect', () => {
      const head = Object.entries({ host: 'localhost', connection: 'close', ...o.headers })
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      socket.write(`${o.method ?? 'GET'} ${o.path} HTTP/1.1\r\n${head}\r\n`);
      if (o.pauseMs) {
        socket.pause();
        setTimeout(() => socket.resume(), o.pauseMs);
      }
    });
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      received += c.length;
      if (headEnd < 0) headEnd = Buffer.concat(chunks).indexOf('\r\n\r\n');
      if (o.abortAfter !== undefined && headEnd >= 0 && received - headEnd - 4 >= o.abortAfter) {
        socket.destroy();
        finish();
      }
    });
    socket.on('end', finish);
    socket.on('close', finish);
    socket.on('error', (err) => (headEnd >= 0 ? finish() : reject(err)));
  });
}

function parse(all: Buffer, headEnd: number, head: boolean): RawAnswer {
  const lines = all.subarray(0, headEnd).toString('latin1').split('\r\n');
  const status = Number(lines[0]!.split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const rest = all.subarray(headEnd + 4);
  if (head || status === 304 || status === 204) return { status, headers, body: Buffer.alloc(0), complete: rest.length === 0 };
  if (headers['transfer-encoding'] === 'chunked') {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const eol = rest.indexOf('\r\n', at);
      if (eol < 0) return { status, headers, body: Buffer.concat(parts), complete: false };
      const size = parseInt(rest.subarray(at, eol).toString('latin1'), 16);
      if (size === 0) return { status, headers, body: Buffer.concat(parts), complete: true };
      if (eol + 2 + size > rest.length) return { status, headers, body: Buffer.concat([...parts, rest.subarray(eol + 2)]), complete: false };
      parts.push(rest.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
  }
  const length = headers['content-length'] === undefined ? undefined : Number(headers['content-length']);
  return { status, headers, body: length === undefined ? rest : rest.subarray(0, length), complete: length !== undefined && rest.length >= length };
}
