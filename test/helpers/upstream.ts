// A real HTTP(S) upstream on loopback that logs every request it receives, so tests can
// assert that a refused request never reached it. Serves objects from a map, with
// single-range and conditional support, and demands a credential when told to.
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';

export interface UpstreamRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  /** subject CN of the client certificate, when one was presented */
  clientCert?: string;
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
    log.push({ method: req.method!, url: req.url!, headers: req.headers, ...(peer && peer.subject ? { clientCert: String(peer.subject.CN) } : {}) });
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
