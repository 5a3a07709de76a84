// The listeners: HTTPS (or explicitly plain HTTP) for the data routes, an optional
// plain-HTTP redirector, and the admin listener. Each request reads the current Runtime,
// so a reload swaps behaviour without touching sockets.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { handleAdmin, type AdminHooks } from './admin.js';
import { handleData } from './data-route.js';
import { handlePresign } from './presign-route.js';
import { answerClientError, sendError } from './respond.js';
import type { Runtime } from './runtime.js';
import { handleSession } from './session-route.js';

export interface Listening {
  data: AddressInfo;
  admin: AddressInfo;
  redirect: AddressInfo | undefined;
}

/** Framing and head checks Node's parser leaves to us. */
function badHead(req: IncomingMessage): boolean {
  const url = req.url;
  // Absolute-form (GET http://elsewhere/ …) and asterisk-form targets are proxy requests.
  if (url === undefined || url.charCodeAt(0) !== 47 /* '/' */) return true;
  const raw = req.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host' && ++hosts > 1) return true;
  }
  return false;
}

export class KeyholeServer {
  private readonly data: Server;
  private readonly admin: Server;
  private readonly redirect: Server | undefined;
  private draining = false;

  constructor(
    private runtime: Runtime,
    private readonly hooks: Partial<AdminHooks> = {},
  ) {
    const cfg = runtime.config.server;
    const common = {
      maxHeaderSize: cfg.maxHeaderSize,
      headersTimeout: cfg.timeouts.headers,
      requestTimeout: cfg.timeouts.request,
      keepAliveTimeout: cfg.timeouts.keepAlive,
      requireHostHeader: true,
      joinDuplicateHeaders: false,
    };
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    this.data = cfg.tls
      ? createHttpsServer({ ...common, ...this.tlsOptions(runtime.config) }, handler)
      : createHttpServer(common, handler);
    this.data.setTimeout(cfg.timeouts.idle);
    this.data.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.clientError(err, socket));
    this.admin = createHttpServer({ ...common }, (req, res) => {
      handleAdmin(this.runtime, { accepting: () => !this.draining, ...this.hooks }, req, res).catch((err) => this.crash(err, res));
    });
    this.redirect = cfg.redirectHttp ? createHttpServer(common, (req, res) => this.redirectToHttps(req, res)) : undefined;
  }

  get current(): Runtime {
    return this.runtime;
  }

  private tlsOptions(config: Config): { cert: Buffer; key: Buffer; minVersion: 'TLSv1.2' | 'TLSv1.3' } {
    const tls = config.server.tls!;
    return { cert: readFileSync(tls.cert), key: readFileSync(tls.key), minVersion: tls.minVersion };
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const rt = this.runtime;
    const cfg = rt.config.server;
    if (cfg.tls) {
      const h = cfg.hsts;
      res.setHeader('strict-transport-security', `max-age=${h.maxAge}${h.includeSubDomains ? '; includeSubDomains' : ''}${h.preload ? '; preload' : ''}`);
    }
    res.setHeader('referrer-policy', 'no-referrer');
    if (badHead(req)) {
      res.shouldKeepAlive = false;
      return sendError(res, 400, 'bad_request', randomUUID());
    }
    const url = req.url!;
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    let done: Promise<void>;
    if (path === '/v1/data') done = handleData(rt, req, res);
    else if (path === '/v1/session') done = handleSession(rt, req, res);
    else if (path === '/v1/presign') done = handlePresign(rt, req, res);
    else {
      sendError(res, 404, 'route_not_found', randomUUID());
      return;
    }
    done.catch((err) => this.crash(err, res));
  }

  /** A head Node could not parse (e.g. larger than maxHeaderSize): answered, audited as a refusal. */
  private clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const answered = answerClientError(err, socket);
    if (!answered) return;
    const { status, reason, id } = answered;
    this.runtime.metrics.requests.labels('-', String(status), 'deny').inc();
    this.runtime.audit.write({
      id, sub: undefined, org: undefined, provider: undefined, uri: undefined, decision: 'deny', reason, status,
      bytes: 0, aborted: false, ms: 0, client: (socket as Socket).remoteAddress, tokenSource: undefined,
    });
  }

  private crash(err: unknown, res: ServerResponse): void {
    this.runtime.logger.error({ err }, 'request handler failed');
    if (!res.headersSent) sendError(res, 500, 'internal', randomUUID());
    else res.destroy();
  }

  private redirectToHttps(req: IncomingMessage, res: ServerResponse): void {
    const cfg = this.runtime.config.server;
    const fallbackHost = (req.headers.host ?? 'localhost').replace(/:\d+$/, '');
    const host = /^[a-zA-Z0-9.-]+$|^\[[0-9a-fA-F:]+\]$/.test(fallbackHost) ? fallbackHost : 'localhost';
    const port = (this.data.address() as AddressInfo | null)?.port ?? cfg.listen.port;
    const origin = cfg.publicUrl ? new URL(cfg.publicUrl).origin : `https://${host}${port === 443 ? '' : `:${port}`}`;
    const path = req.url?.startsWith('/') ? req.url : '/';
    res.writeHead(308, { location: origin + path, 'content-length': 0, 'cache-control': 'no-store' });
    res.end();
  }

  async listen(): Promise<Listening> {
    const cfg = this.runtime.config;
    const on = (server: Server, host: string, port: number) =>
      new Promise<AddressInfo>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.removeListener('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    const data = await on(this.data, cfg.server.listen.host, cfg.server.listen.port);
    const admin = await on(this.admin, cfg.admin.listen.host, cfg.admin.listen.port);
    const redirect = this.redirect && cfg.server.redirectHttp ? await on(this.redirect, cfg.server.redirectHttp.host, cfg.server.redirectHttp.port) : undefined;
    return { data, admin, redirect };
  }

  /** Re-reads the certificate and key: new TLS handshakes use them, open ones are untouched. */
  reloadTls(): void {
    if (this.runtime.config.server.tls && 'setSecureContext' in this.data) {
      (this.data as import('node:https').Server).setSecureContext(this.tlsOptions(this.runtime.config));
    }
  }

  /** Swaps in a new runtime; the old one closes once its in-flight requests are done. */
  swap(next: Runtime): Runtime {
    const previous = this.runtime;
    this.runtime = next;
    return previous;
  }

  /** Stops accepting, lets in-flight requests finish for up to `drainMs`, then closes. */
  async close(drainMs = 10_000): Promise<void> {
    this.draining = true;
    const servers = [this.data, this.redirect].filter((s): s is Server => s !== undefined);
    const closed = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const s of servers) s.closeIdleConnections();
    const timer = setTimeout(() => servers.forEach((s) => s.closeAllConnections()), drainMs);
    await closed;
    clearTimeout(timer);
    await new Promise<void>((r) => {
      this.admin.close(() => r());
      this.admin.closeAllConnections();
    });
    await this.runtime.close();
  }
}
