// The listeners: HTTPS (or explicitly plain HTTP) for the data routes, an optional
// plain-HTTP redirector, and the admin listener. Each request reads the current Runtime,
// so a reload swaps behaviour without touching sockets.
//
// With TLS, one TLS server accepts every connection and ALPN picks its protocol: `h2` goes
// to the HTTP/2 listener (http2.ts), anything else (http/1.1, no ALPN) to the HTTP/1.1 server,
// which keeps its own parser, timeouts and websocket upgrades. Both call the same handler.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { handleAdmin, type AdminHooks } from './admin.ts';
import { handleData } from './data-route.ts';
import { handlePresign } from './presign-route.ts';
import { handleAuthorize } from './authorize-route.ts';
import { answerClientError, sendError } from '../http/answer.ts';
import { logRefusal, refuse } from '../observe/refusal.ts';
import type { Runtime } from '../runtime.ts';
import { handleSession } from './session-route.ts';
import { ownRoute } from './routes.ts';
import { handleUpgrade, refuseUpgrade } from './app-route.ts';
import { InFlight } from './in-flight.ts';
import { setFields } from '../http/data-head.ts';
import { readServerTls, type ServerTlsMaterial } from '../tls/server.ts';
import { auditEvent } from '../observe/audit.ts';
import { badHttp2Head, Http2Listener, type Http2Limits } from './http2.ts';
import type { ServerConfig } from '../config/schema.ts';

export interface Listening {
  data: AddressInfo;
  admin: AddressInfo;
  redirect: AddressInfo | undefined;
}

/** Connections on which a request head was refused: nothing more is read from them. */
const refusedSockets = new WeakSet<object>();

/** Framing and head checks Node's parser leaves to us. */
function badHead(req: IncomingMessage): boolean {
  const url = req.url;
  // Absolute-form (GET http://elsewhere/ …) and asterisk-form targets are proxy requests.
  if (url === undefined || url.charCodeAt(0) !== 47 /* '/' */) return true;
  const raw = req.rawHeaders;
  if (req.httpVersionMajor === 2) return badHttp2Head(raw);
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host' && ++hosts > 1) return true;
    // llhttp lets `Transfer-Encoding: xchunked` / `"chunked"`, and any on HTTP/1.0, through
    // as a zero-length body; a front proxy that reads them differently would desync.
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      if (raw[i + 1]!.trim().toLowerCase() !== 'chunked' || req.httpVersion !== '1.1') return true;
    }
  }
  return false;
}

export class KeyholeServer {
  /** what listens on the data port: the TLS front, or the HTTP/1.1 server itself without TLS */
  private readonly listener: NetServer;
  /** HTTP/1.1 on the data port (every connection without TLS, those not negotiating h2 with it) */
  private readonly data: Server;
  private readonly tlsFront: TlsServer | undefined;
  private readonly http2: Http2Listener | undefined;
  private readonly admin: Server;
  private readonly redirect: Server | undefined;
  private draining = false;
  /** requests in flight per runtime: a retired runtime closes when its count reaches zero */
  private readonly inflight = new InFlight<Runtime>();
  private readonly retiring = new Set<Promise<void>>();
  /** every open socket of the data listeners: upgraded ones (websockets) escape closeAllConnections */
  private readonly sockets = new Set<Socket>();
  private tls: ServerTlsMaterial | undefined;
  /** admin requests in flight: the data listener's count is the total less these (a scrape does not count itself) */
  private adminInFlight = 0;

  private runtime: Runtime;
  private readonly hooks: Partial<AdminHooks>;
  constructor(
    runtime: Runtime,
    hooks: Partial<AdminHooks> = {},
  ) {
    this.runtime = runtime;
    this.hooks = hooks;
    const cfg = runtime.config.server;
    const common = {
      maxHeaderSize: cfg.maxHeaderSize,
      headersTimeout: cfg.timeouts.headers,
      requestTimeout: cfg.timeouts.request,
      keepAliveTimeout: cfg.timeouts.keepAlive,
      requireHostHeader: true,
      joinDuplicateHeaders: false,
      // Node checks headersTimeout/requestTimeout only every 30 s by default, so a
      // slowloris head outlived a 10 s headers timeout by up to 30 s.
      connectionsCheckingInterval: Math.min(1_000, cfg.timeouts.headers),
    };
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    this.tls = cfg.tls ? readServerTls(cfg.tls) : undefined;
    this.data = createHttpServer(common, handler);
    this.data.setTimeout(cfg.timeouts.idle);
    if (this.tls) {
      const http2 = cfg.http2 ? new Http2Listener(http2Limits(cfg), () => this.runtime.logger, handler) : undefined;
      const front = createTlsServer({ ...tlsOptions(this.tls), ALPNProtocols: http2 ? ['h2', 'http/1.1'] : ['http/1.1'] });
      front.on('secureConnection', (socket: TLSSocket) => {
        if (http2 && socket.alpnProtocol === 'h2') http2.accept(socket);
        else this.data.emit('connection', socket);
      });
      this.tlsFront = front;
      this.http2 = http2;
    }
    this.listener = this.tlsFront ?? this.data;
    const track = (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    };
    this.listener.on('connection', track);
    this.data.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.clientError(err, socket));
    this.data.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // The same head checks as every other request: an upgrade is a request too.
      if (refusedSockets.has(req.socket) || badHead(req)) return refuseUpgrade(this.runtime, req, socket, 'request head or framing refused');
      handleUpgrade(this.runtime, req, socket, head);
    });
    this.admin = createHttpServer({ ...common }, (req, res) => {
      this.inflight.enter(this.runtime, res);
      this.adminInFlight++;
      res.once('close', () => this.adminInFlight--);
      handleAdmin(this.runtime, { accepting: () => !this.draining, ...this.hooks }, req, res).catch((err) => this.crash(err, req, res));
    });
    this.redirect = cfg.redirectHttp ? createHttpServer(common, (req, res) => this.redirectToHttps(req, res)) : undefined;
    this.probe(runtime);
  }

  /** What /metrics reads of the listeners, at scrape time (a reload's runtime shares the Metrics, or gets them here). */
  private probe(rt: Runtime): void {
    rt.metrics.certificateProbe = () => (this.tls ? [['data', this.tls.notAfter]] : []);
    rt.metrics.inFlightProbe = () => this.inflight.count() - this.adminInFlight;
  }

  get current(): Runtime {
    return this.runtime;
  }

  /** The certificate being served now (fingerprint, serial, expiry), when TLS is on. */
  get certificate(): Pick<ServerTlsMaterial, 'fingerprint' | 'serial' | 'validTo'> | undefined {
    return this.tls && { fingerprint: this.tls.fingerprint, serial: this.tls.serial, validTo: this.tls.validTo };
  }

  /** Requests in flight on the data and admin listeners. */
  get inFlight(): number {
    return this.inflight.count();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const rt = this.runtime;
    if (this.draining) res.shouldKeepAlive = false;
    // Node never emits 'close' on a pipelined response whose connection died before its
    // turn (only its request closes): emit it, so the relay aborts the upstream request,
    // the audit event is written and in-flight counting ends. A response without a socket
    // is one waiting for its turn.
    if (!res.socket) {
      req.once('close', () => {
        if (!res.socket && req.socket.destroyed && !res.writableFinished) res.emit('close');
      });
    }
    const url = req.url;
    const q = url === undefined ? -1 : url.indexOf('?');
    const path = q === -1 ? url : url!.slice(0, q);
    const refused = refusedSockets.has(req.socket) || badHead(req);
    const route = ownRoute(path);
    try {
      // The data route sends its own header fields with each answer, in one writeHead.
      if (route === 'data' && !refused) {
        handleData(rt, req, res, this.inflight)?.catch((err: unknown) => this.crash(err, req, res));
        return;
      }
      this.inflight.enter(rt, res);
      setFields(res, rt.securityHeaders);
      // A request pipelined behind a refused head is never run: the framing that delimited
      // it cannot be trusted. The connection closes after the 400.
      if (refused) {
        res.shouldKeepAlive = false;
        refusedSockets.add(req.socket);
        return refuse(rt.logger, req, res, 'bad_request', randomUUID(), { route: 'router', level: 'warn', fields: { why: 'request head or framing refused' } });
      }
      let done: Promise<void>;
      if (route === 'session') done = handleSession(rt, req, res, (host) => this.ownOrigin(host));
      else if (route === 'presign') done = handlePresign(rt, req, res);
      else if (route === 'authorize') done = handleAuthorize(rt, req, res);
      else {
        const app = rt.app;
        if (!app) return refuse(rt.logger, req, res, 'route_not_found', randomUUID(), { route: 'router' });
        // App pages: the referrer stays on this origin (token-bearing data URLs never leave
        // it) but is still sent there: under no-referrer a same-origin form POST carries
        // `Origin: null` and no Referer, which CSRF checks (Django's, Flask-WTF's) refuse.
        // The app's own Referrer-Policy, when it sends one, wins.
        res.setHeader('referrer-policy', 'same-origin');
        done = app.handle(req, res);
      }
      done.catch((err: unknown) => this.crash(err, req, res));
    } catch (err) {
      this.crash(err, req, res);
    }
  }

  /** A head Node could not parse (e.g. larger than maxHeaderSize): answered, audited as a refusal. */
  private clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const answered = answerClientError(err, socket);
    if (!answered) return;
    const { status, reason, id } = answered;
    this.runtime.metrics.requests.labels('-', String(status), 'deny').inc();
    this.runtime.audit.write(auditEvent({ id, kind: 'head', reason, status, client: (socket as Socket).remoteAddress }));
  }

  private crash(err: unknown, req: IncomingMessage, res: ServerResponse): void {
    if (res.headersSent) {
      this.runtime.logger.error({ err, method: req.method }, 'request handler failed');
      res.destroy();
      return;
    }
    const id = randomUUID();
    logRefusal(this.runtime.logger, req, id, 'internal', { route: 'router', level: 'error', fields: { err } });
    sendError(res, 'internal', id);
  }

  /**
   * This server's own https origin as a client named it: `server.publicUrl` when set (the
   * client's Host is then irrelevant); otherwise `https://<Host>` only when the served
   * certificate is valid for that host, so a Host the client made up (or a rebound DNS name)
   * never becomes a redirect target or a trusted Origin. Undefined when there is none.
   */
  ownOrigin(hostHeader: string | undefined): string | undefined {
    const cfg = this.runtime.config.server;
    if (cfg.publicUrl) return new URL(cfg.publicUrl).origin;
    if (!hostHeader || !this.tls) return undefined;
    let url: URL;
    try {
      url = new URL(`https://${hostHeader}`);
    } catch {
      return undefined;
    }
    if (url.host !== hostHeader.toLowerCase() || url.username || url.pathname !== '/') return undefined;
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (!this.tls.names(host)) return undefined;
    const port = (this.listener.address() as AddressInfo | null)?.port ?? cfg.listen.port;
    return `https://${url.hostname}${port === 443 ? '' : `:${port}`}`;
  }

  private redirectToHttps(req: IncomingMessage, res: ServerResponse): void {
    const origin = this.ownOrigin(req.headers.host?.replace(/:\d+$/, ''));
    // No server.publicUrl, and a Host the certificate does not name.
    if (origin === undefined) return refuse(this.runtime.logger, req, res, 'bad_request', randomUUID(), { route: 'redirect', fields: { why: 'Host not named by the certificate' } });
    const path = req.url?.startsWith('/') ? req.url : '/';
    res.writeHead(308, { location: origin + path, 'content-length': 0, 'cache-control': 'no-store' });
    res.end();
  }

  async listen(): Promise<Listening> {
    const { data, redirect } = await this.listenData();
    const cfg = this.runtime.config;
    const admin = await listenOn(this.admin, cfg.admin.listen.host, cfg.admin.listen.port);
    return { data, admin, redirect };
  }

  /** The data (and redirect) listeners only: cluster workers, whose primary owns the admin listener. */
  async listenData(): Promise<Omit<Listening, 'admin'>> {
    const cfg = this.runtime.config;
    const data = await listenOn(this.listener, cfg.server.listen.host, cfg.server.listen.port);
    // Node starts an HTTP server's connection tracking (the headers and request timeouts,
    // closeIdleConnections) on its 'listening' event; behind the TLS front it never listens itself.
    if (this.tlsFront) this.data.emit('listening');
    const redirect = this.redirect && cfg.server.redirectHttp ? await listenOn(this.redirect, cfg.server.redirectHttp.host, cfg.server.redirectHttp.port) : undefined;
    return { data, redirect };
  }

  /**
   * Re-reads the certificate and key named by the current config and swaps the TLS secure
   * context: new handshakes use them, open connections are untouched. A pair that does
   * not parse or match throws and the old one stays. Returns the new material, or
   * undefined when nothing changed (or TLS is off).
   */
  reloadTls(material?: ServerTlsMaterial): ServerTlsMaterial | undefined {
    const files = this.runtime.config.server.tls;
    if (!files || !this.tls) return undefined;
    const next = material ?? readServerTls(files);
    if (next.digest === this.tls.digest) return undefined;
    this.tlsFront?.setSecureContext(tlsOptions(next));
    this.tls = next;
    return next;
  }

  /**
   * Swaps in a new runtime for every request that starts from now on. The previous one is
   * closed when its last in-flight request ends (the returned promise). Settings the
   * listeners read per connection (timeouts, head size) follow the new config.
   */
  swap(next: Runtime, opts: { keepRevocation?: boolean } = {}): Promise<void> {
    const previous = this.runtime;
    this.runtime = next;
    this.probe(next);
    const cfg = next.config.server;
    for (const s of [this.data, this.redirect]) {
      if (!s) continue;
      s.headersTimeout = cfg.timeouts.headers;
      s.requestTimeout = cfg.timeouts.request;
      s.keepAliveTimeout = cfg.timeouts.keepAlive;
      // Node reads this per new connection; @types/node does not declare it.
      (s as Server & { maxHeaderSize: number }).maxHeaderSize = cfg.maxHeaderSize;
    }
    this.data.timeout = cfg.timeouts.idle;
    this.http2?.update(http2Limits(cfg));
    const retired = this.inflight
      .idle(previous)
      .then(() => previous.close(opts))
      .catch((err: unknown) => next.logger.error({ err }, 'closing the previous runtime failed'))
      .finally(() => this.retiring.delete(retired));
    this.retiring.add(retired);
    return retired;
  }

  /** true from the start of a drain: /readyz answers 503 and keep-alive ends. */
  get isDraining(): boolean {
    return this.draining;
  }

  /**
   * Drains: /readyz turns false, the listeners stop accepting, idle keep-alive connections
   * close, in-flight requests get up to `drainMs` to finish (their connections close after
   * the response), then whatever is left is cut. Closes the runtime (pools, Redis) last.
   * Returns how many requests were still in flight when the time ran out.
   */
  async close(drainMs = 10_000): Promise<{ cut: number }> {
    this.draining = true;
    const servers = [this.data, this.redirect].filter((s): s is Server => s !== undefined);
    const listeners: NetServer[] = [this.listener, ...(this.redirect ? [this.redirect] : [])];
    const closed = Promise.all(listeners.map((s) => new Promise<void>((r) => s.close(() => r()))));
    // Behind the TLS front the HTTP/1.1 server never listened: closing it stops its timers.
    if (this.tlsFront) this.data.close(() => {});
    for (const s of servers) s.closeIdleConnections();
    this.http2?.closeGracefully();
    // A response that ends during the drain leaves an idle keep-alive socket: close it.
    const sweep = setInterval(() => servers.forEach((s) => s.closeIdleConnections()), 50);
    let cut = 0;
    const timer = setTimeout(() => {
      cut = this.inflight.count();
      servers.forEach((s) => s.closeAllConnections());
      this.http2?.destroyAll();
      for (const socket of this.sockets) socket.destroy();
    }, drainMs);
    await closed;
    clearTimeout(timer);
    clearInterval(sweep);
    await new Promise<void>((r) => {
      this.admin.close(() => r());
      this.admin.closeAllConnections();
    });
    await this.inflight.allIdle();
    await Promise.allSettled([...this.retiring]);
    await this.runtime.close();
    return { cut };
  }
}

function tlsOptions(m: ServerTlsMaterial): { cert: Buffer; key: Buffer; minVersion: 'TLSv1.2' | 'TLSv1.3' } {
  return { cert: m.cert, key: m.key, minVersion: m.minVersion };
}

function http2Limits(cfg: ServerConfig): Http2Limits {
  return { maxHeaderSize: cfg.maxHeaderSize, headersMs: cfg.timeouts.headers, requestMs: cfg.timeouts.request, idleMs: cfg.timeouts.idle };
}

function listenOn(server: NetServer, host: string, port: number): Promise<AddressInfo> {
  return new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
