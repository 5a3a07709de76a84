// A stand-in labeling app on loopback: logs the raw bytes of every connection (so a test
// can prove a refused request never reached it), records each parsed request with its
// body, echoes by default, and speaks just enough websocket to echo frames.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { testCerts } from '../helpers/certs.ts';
import type { Running } from '../helpers/keyhole.ts';

export interface AppRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: Buffer;
}

export type Route = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

export interface TestApp {
  origin: string;
  /** every request the app parsed, with its whole body */
  requests: AppRequest[];
  /** every byte the app received, all connections, in arrival order */
  rawText(): string;
  /** requests whose body is still arriving, by path (for abort tests) */
  started: string[];
  /** resolves when a request for `path` has started arriving */
  waitStarted(path: string): Promise<IncomingMessage>;
  /** resolves when the app saw the request for `path` end early (client aborted) */
  aborted: string[];
  waitAborted(path: string): Promise<void>;
  close(): Promise<void>;
}

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Echoes websocket frames (client frames are masked; ours are not). Small frames only. */
function websocketEcho(socket: Duplex): void {
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2) {
      const opcode = buf[0]! & 0x0f;
      let len = buf[1]! & 0x7f;
      let at = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        at = 4;
      }
      const masked = (buf[1]! & 0x80) !== 0;
      const need = at + (masked ? 4 : 0) + len;
      if (buf.length < need) return;
      const mask = masked ? buf.subarray(at, at + 4) : undefined;
      const payload = Buffer.from(buf.subarray(at + (masked ? 4 : 0), need));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
      buf = buf.subarray(need);
      const reply = opcode === 1 ? Buffer.from(`echo:${payload.toString()}`) : payload;
      const header = reply.length < 126 ? Buffer.from([0x80 | opcode, reply.length]) : Buffer.from([0x80 | opcode, 126, reply.length >> 8, reply.length & 0xff]);
      socket.write(Buffer.concat([header, reply]));
      if (opcode === 8) socket.end();
    }
  });
}

export async function startTestApp(routes: Record<string, Route> = {}): Promise<TestApp> {
  const requests: AppRequest[] = [];
  const raw: Buffer[] = [];
  const started: string[] = [];
  const aborted: string[] = [];
  const startWaiters: { path: string; resolve: (r: IncomingMessage) => void }[] = [];
  const abortWaiters: { path: string; resolve: () => void }[] = [];
  const sockets = new Set<Socket>();

  const server: Server = createServer((req, res) => {
    const path = req.url!.split('?')[0]!;
    started.push(path);
    startWaiters.filter((w) => w.path === path).forEach((w) => w.resolve(req));
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('close', () => {
      if (!req.complete) {
        aborted.push(path);
        abortWaiters.filter((w) => w.path === path).forEach((w) => w.resolve());
      }
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body });
      const route = routes[path];
      if (route) return route(req, res, body);
      const text = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: body.toString('latin1') });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('data', (d: Buffer) => raw.push(d));
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    requests.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.alloc(0) });
    if (req.url?.startsWith('/ws/refuse')) {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n\r\nforbidden');
      return;
    }
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}${WS_GUID}`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSet-Cookie: ws=1; Path=/\r\n\r\n`);
    websocketEcho(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    rawText: () => Buffer.concat(raw).toString('latin1'),
    started,
    waitStarted: (path) =>
      new Promise((resolve) => {
        startWaiters.push({ path, resolve });
      }),
    aborted,
    waitAborted: (path) =>
      aborted.includes(path)
        ? Promise.resolve()
        : new Promise((resolve) => {
            abortWaiters.push({ path, resolve });
          }),
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Writes raw bytes on a fresh TLS connection; resolves with everything read until close. */
export function exchange(k: Running, bytes: string): Promise<string> {
  const port = Number(new URL(k.base).port);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(testCerts().caCert) });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within 10s; got: ${Buffer.concat(chunks).toString('latin1').slice(0, 200)}`));
    }, 10_000);
    socket.on('secureConnect', () => socket.write(bytes));
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => undefined); // a reset after the answer is fine
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

