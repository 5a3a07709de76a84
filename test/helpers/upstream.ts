// A real HTTP(S) upstream on loopback that logs every request it receives, so tests can
// assert that a refused request never reached it. Serves objects from a map, with
// single-range and conditional support, and demands a credential when told to. Also: a raw
// socket upstream for answers no HTTP server library writes, and a Keyhole in front of an
// upstream (the `corp` http provider, https://data.corp/ → the upstream).
import type { Test } from 'tap';
import { createServer as createNet, type Socket } from 'node:net';
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { dataUrl, indentLines, keyholeWith, type Running, type StartOptions, type WithToken } from './keyhole.ts';

export interface UpstreamRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  /** subject CN of the client certificate, when one was presented */
  clientCert?: string;
  /** the connection it came on (its client port): which requests shared one */
  remotePort?: number | undefined;
}

export interface UpstreamOptions {
  /** exact Authorization header (or other header) demanded, e.g. 'Basic dXNlcjpwYXNz' */
  demand?: { header: string; value: string };
  tls?: { cert: string; key: string; ca?: string; requireClientCert?: boolean };
  objects?: Record<string, { body: Buffer | string; type?: string }>;
  /** custom behaviour for some paths (faults); return true when handled */
  override?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

export interface Upstream {
  url: string;
  origin: string;
  port: number;
  log: UpstreamRequest[];
  server: Server;
  close(): Promise<void>;
}

export async function startUpstream(opts: UpstreamOptions = {}): Promise<Upstream> {
  const log: UpstreamRequest[] = [];
  const objects = opts.objects ?? {};
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as import('node:tls').TLSSocket;
    const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
    log.push({ method: req.method!, url: req.url!, headers: req.headers, remotePort: req.socket.remotePort, ...(peer && peer.subject ? { clientCert: String(peer.subject.CN) } : {}) });
    if (opts.demand && req.headers[opts.demand.header.toLowerCase()] !== opts.demand.value) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="upstream"', 'content-type': 'text/plain' });
      res.end('upstream says: unauthorized');
      return;
    }
    if (opts.override?.(req, res)) return;
    const path = decodeURIComponent(req.url!.split('?')[0]!);
    const obj = objects[path];
    if (!obj) {
      res.writeHead(404, { 'content-type': 'text/plain', 'x-upstream-secret': 'internal-host-name' });
      res.end(`no object at ${path} on internal-host`);
      return;
    }
    const body = Buffer.isBuffer(obj.body) ? obj.body : Buffer.from(obj.body);
    const etag = `"${createHash('sha1').update(body).digest('hex').slice(0, 16)}"`;
    const lastModified = 'Wed, 21 Oct 2026 07:28:00 GMT';
    const base = {
      'content-type': obj.type ?? 'application/octet-stream',
      etag,
      'last-modified': lastModified,
      'accept-ranges': 'bytes',
      'set-cookie': 'upstream=leak; Path=/',
      server: 'internal-upstream/1.0',
      'x-amz-request-id': 'should-not-leak',
    };
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { etag, 'last-modified': lastModified });
      res.end();
      return;
    }
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    if (range && (ifRange === undefined || ifRange === etag)) {
      let start = range[1] === '' ? body.length - Number(range[2]) : Number(range[1]);
      let end = range[1] === '' || range[2] === '' ? body.length - 1 : Math.min(Number(range[2]), body.length - 1);
      if (start < 0) start = 0;
      if (start >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` });
        res.end();
        return;
      }
      if (end < start) end = body.length - 1;
      res.writeHead(206, { ...base, 'content-range': `bytes ${start}-${end}/${body.length}`, 'content-length': end - start + 1 });
      res.end(req.method === 'HEAD' ? undefined : body.subarray(start, end + 1));
      return;
    }
    res.writeHead(200, { ...base, 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  const server = opts.tls
    ? createHttps(
        {
          cert: readFileSync(opts.tls.cert),
          key: readFileSync(opts.tls.key),
          ...(opts.tls.ca ? { ca: readFileSync(opts.tls.ca) } : {}),
          requestCert: Boolean(opts.tls.requireClientCert),
          rejectUnauthorized: Boolean(opts.tls.requireClientCert),
        },
        handler,
      )
    : createHttp(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const origin = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  return {
    url: origin + '/',
    origin,
    port,
    log,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface RawUpstream {
  origin: string;
  port: number;
  /** connections still open (for "every socket was freed" checks) */
  openSockets(): number;
}

/**
 * A raw TCP upstream: `answer` gets the socket, method and path (without its leading slash)
 * of each request head and writes whatever bytes, closes or resets the test needs. Closed,
 * with every socket still open, on teardown.
 */
export async function startRawUpstream(t: Test, answer: (socket: Socket, method: string, path: string) => void): Promise<RawUpstream> {
  const sockets = new Set<Socket>();
  const server = createNet((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let head = '';
    socket.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const [method, path] = head.split(' ');
      head = '';
      answer(socket, method!, path!.slice(1));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const port = (server.address() as AddressInfo).port;
  return { origin: `http://127.0.0.1:${port}`, port, openSockets: () => sockets.size };
}

/** The data URI prefix the `corp` provider serves. */
export const CORP = 'https://data.corp/';

/**
 * One `http` provider, as an item of the `providers:` list: `match` → `baseUrl`, loopback
 * allowed (every test upstream is on it); `extra` is more of its YAML (auth, timeouts, tls).
 */
export function httpProviderItem(name: string, match: string, baseUrl: string, extra = ''): string {
  return `  - name: ${name}
    kind: http
    match: ${match}
    allowPrivateNetworks: true
    baseUrl: ${baseUrl}
${indentLines(extra, '    ')}`;
}

/** `providers:` with the http provider `corp`: https://data.corp/ → `baseUrl`. */
export function corpProviderYaml(baseUrl: string, extra = ''): string {
  return `providers:\n${httpProviderItem('corp', CORP, baseUrl, extra)}`;
}

/** A Keyhole in front of an upstream, and a token for all of https://data.corp/. */
export interface Fronted extends WithToken {
  /** GET (or `method`) https://data.corp/`path` through Keyhole, with the token */
  get(path: string, headers?: Record<string, string>, method?: 'GET' | 'HEAD'): ReturnType<Running['get']>;
}

export interface FrontOptions extends StartOptions {
  /** more `corp` provider YAML (auth, timeouts, tls) */
  extra?: string;
}

/** A Keyhole whose one provider `corp` reads from `baseUrl`; closed on teardown. */
export async function keyholeInFront(t: Test, baseUrl: string, { extra, ...start }: FrontOptions = {}): Promise<Fronted> {
  const front = await keyholeWith(t, corpProviderYaml(baseUrl, extra), [CORP], start);
  return { ...front, get: (path, headers = {}, method = 'GET') => front.k.get(dataUrl(CORP + path), { ...front.auth, ...headers }, method) };
}

/**
 * A fresh upstream (`startUpstream(upstream)`) with a Keyhole in front of it, both closed on
 * teardown. The provider's base URL is the upstream's origin + `path` unless `baseUrl` says
 * otherwise (a port where nothing answers, say).
 */
export async function upstreamBehindKeyhole(
  t: Test,
  upstream: UpstreamOptions,
  { path = '/', baseUrl, ...front }: FrontOptions & { path?: string; baseUrl?: string } = {},
): Promise<Fronted & { up: Upstream }> {
  const up = await startUpstream(upstream);
  t.teardown(() => up.close());
  return { up, ...(await keyholeInFront(t, baseUrl ?? up.origin + path, front)) };
}

/**
 * A loopback upstream whose `/big` object is sent in two parts: the first at once, the
 * rest only when the test says so, so a download stays in flight exactly as long as the
 * test needs (no timers).
 */
export async function startGatedUpstream(size = 1 << 20): Promise<{ origin: string; body: Buffer; release(): void; served: number; close(): Promise<void> }> {
  const body = Buffer.alloc(size);
  for (let i = 0; i < size; i++) body[i] = (i * 7) % 251;
  let open: (() => void)[] = [];
  const state = { served: 0 };
  const up = await startUpstream({
    objects: { '/small': { body: 'small', type: 'text/plain' } },
    override: (req, res) => {
      if (!req.url?.startsWith('/big')) return false;
      state.served++;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
      const half = size >> 1;
      res.write(body.subarray(0, half));
      open.push(() => res.end(body.subarray(half)));
      return true;
    },
  });
  return {
    origin: up.origin,
    body,
    release() {
      const waiting = open;
      open = [];
      waiting.forEach((f) => f());
    },
    get served() {
      return state.served;
    },
    close: () => up.close(),
  };
}
