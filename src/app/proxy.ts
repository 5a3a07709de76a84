// Reverse proxy to the labeling app, so one hardened TLS origin serves both the app and its
// data. Built on an undici Pool (dispatch API) and Node's `upgrade` event, not http-proxy:
//  - framing is checked first (framing.ts); an ambiguous request is refused, never forwarded;
//  - the body is streamed, never buffered, and counted: past app.maxBodyBytes → 413;
//  - a chunked body is re-chunked for any method (DELETE/OPTIONS included: the
//    http-proxy CVE-2026-29057 case), a Content-Length body keeps its length;
//  - the client going away aborts the app request, and the app failing cuts the response;
//  - websockets: the upgraded sockets are piped, tracked, and cut on close.
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Dispatcher, Pool } from 'undici';
import { createPool } from '../relay/pool.ts';
import { StreamingHandler, upstreamFailure } from '../relay/stream-handler.ts';
import { statusOf, type Reason } from '../reasons.ts';
import { logRefusal, refuse } from '../observe/refusal.ts';
import { refuseSocket, sendError } from '../http/answer.ts';
import { CookieHardener } from './cookies.ts';
import { markRefused, requestFraming, wasRefused } from './framing.ts';
import { appRequestHeaders, appResponseHeaders, TrustedProxies } from './headers.ts';
import { MethodPolicy, normaliseTarget } from './methods.ts';
import type { AppConfig } from './schema.ts';
import type { LogoutHook } from './logout.ts';

export interface AppProxyOptions {
  /** Keyhole's session cookie name: stripped from requests, never set by the app */
  sessionCookie: string;
  /** the scheme browsers use to reach Keyhole (X-Forwarded-Proto) */
  proto: 'https' | 'http';
  /** server.publicUrl's host[:port], when set: the app's Host and X-Forwarded-Host */
  publicHost?: string | undefined;
  logger: Logger;
  /** auth.introspect.logout: records a logout before the app sees it (logout.ts) */
  logout?: LogoutHook | undefined;
}

class BodyTooLarge extends Error {}

/** Streams the client body through, counting; throws once it passes the limit. */
async function* limited(body: AsyncIterable<Buffer>, max: number): AsyncGenerator<Buffer> {
  let seen = 0;
  for await (const chunk of body) {
    seen += chunk.length;
    if (seen > max) throw new BodyTooLarge('request body too large');
    yield chunk;
  }
}

/** Why an exchange with the app failed: a request body past app.maxBodyBytes, or the app. */
function failureFor(err: Error): Reason {
  return err instanceof BodyTooLarge ? 'body_too_large' : upstreamFailure(err);
}

/** Relays the app's answer to the browser; aborts the app request when the browser leaves. */
class AppResponse extends StreamingHandler {
  private readonly onClose = () => {
    if (!this.res.writableFinished) this.clientGone();
  };

  private readonly res: ServerResponse;
  private readonly cookies: CookieHardener;
  private readonly id: string;
  private readonly refused: (reason: Reason, fields: Record<string, unknown>) => void;
  private readonly logger: Logger;
  private readonly done: () => void;
  constructor(
    res: ServerResponse,
    cookies: CookieHardener,
    id: string,
    /** logs a failure this side answers (413, 502, 504) as a refusal of the request */
    refused: (reason: Reason, fields: Record<string, unknown>) => void,
    logger: Logger,
    done: () => void,
  ) {
    super(res);
    this.res = res;
    this.cookies = cookies;
    this.id = id;
    this.refused = refused;
    this.logger = logger;
    this.done = done;
    res.once('close', this.onClose);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    if (statusCode < 200) return;
    try {
      const out = appResponseHeaders(headers, this.cookies);
      // HTTP/2 has no reason phrase (Node warns when given one).
      if (statusMessage && statusMessage !== STATUS_CODES[statusCode] && this.res.req.httpVersionMajor !== 2) this.res.writeHead(statusCode, statusMessage, out);
      else this.res.writeHead(statusCode, out);
    } catch (err) {
      // A header Node refuses to write (control characters): the answer is garbage.
      this.logger.warn({ err, requestId: this.id }, 'app answered an unwritable head');
      controller.abort(err as Error);
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.forward(controller, chunk);
  }

  onResponseEnd(): void {
    this.res.removeListener('close', this.onClose);
    this.res.end();
    this.done();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    const res = this.res;
    res.removeListener('close', this.onClose);
    if (res.destroyed) {
      this.done(); // the client left first: the abort we asked for
      return;
    }
    const reason = failureFor(err);
    if (res.headersSent) {
      this.logger.warn({ requestId: this.id, reason, err: err.message }, 'app answer cut: the app failed mid-answer');
      res.destroy(err);
    } else {
      if (reason === 'body_too_large') res.shouldKeepAlive = false; // the rest of the body is never read
      this.refused(reason, reason === 'body_too_large' ? {} : { err: err.message });
      sendError(res, reason, this.id);
    }
    this.done();
  }
}


function headText(statusLine: string, headers: OutgoingHttpHeaders): string {
  const lines = [statusLine];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      const text = String(v);
      // Never let the app inject a line into our raw head.
      if (!/[\r\n\0]/.test(text)) lines.push(`${name}: ${text}`);
    }
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** The websocket handshake towards the app; on 101 the two sockets are piped together. */
class AppUpgrade extends StreamingHandler {
  private answered = false;
  private readonly onClientGone = () => this.clientGone();

  private readonly client: Duplex;
  private readonly head: Buffer;
  private readonly proxy: AppProxy;
  private readonly id: string;
  private readonly refused: (reason: Reason, fields: Record<string, unknown>) => void;
  constructor(
    client: Duplex,
    head: Buffer,
    proxy: AppProxy,
    id: string,
    /** logs the app failing the handshake as a refusal of the upgrade */
    refused: (reason: Reason, fields: Record<string, unknown>) => void,
  ) {
    super(client);
    this.client = client;
    this.head = head;
    this.proxy = proxy;
    this.id = id;
    this.refused = refused;
    client.once('close', this.onClientGone);
  }

  onRequestUpgrade(_c: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, app: Duplex): void {
    this.answered = true;
    const client = this.client;
    client.removeListener('close', this.onClientGone);
    if (client.destroyed) {
      app.destroy();
      return;
    }
    client.write(headText(`HTTP/1.1 ${statusCode} Switching Protocols`, appResponseHeaders(headers, this.proxy.cookies, true)));
    if (this.head.length > 0) app.write(this.head);
    this.proxy.tunnel(client, app);
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    if (statusCode < 200) return;
    // The app refused the upgrade: its answer goes back as a close-delimited response.
    this.answered = true;
    const out = appResponseHeaders(headers, this.proxy.cookies);
    delete out['content-length'];
    out.connection = 'close';
    this.client.write(headText(`HTTP/1.1 ${statusCode} ${statusMessage || STATUS_CODES[statusCode] || ''}`, out));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.client.writable) this.forward(controller, chunk);
  }

  onResponseEnd(): void {
    this.client.removeListener('close', this.onClientGone);
    this.client.end();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.client.removeListener('close', this.onClientGone);
    if (this.client.destroyed) return;
    if (this.answered) {
      this.client.destroy();
      return;
    }
    const reason = failureFor(err);
    this.refused(reason, { err: err.message });
    refuseSocket(this.client, reason, this.id);
  }
}

export class AppProxy {
  readonly cookies: CookieHardener;
  private readonly pool: Pool;
  private readonly trusted: TrustedProxies;
  private readonly policy: MethodPolicy;
  private readonly tunnels = new Set<Duplex>();

  private readonly cfg: AppConfig;
  private readonly opts: AppProxyOptions;
  constructor(
    cfg: AppConfig,
    opts: AppProxyOptions,
  ) {
    this.cfg = cfg;
    this.opts = opts;
    this.cookies = new CookieHardener(cfg.cookies, opts.sessionCookie);
    this.trusted = new TrustedProxies(cfg.trustedProxies);
    this.policy = new MethodPolicy(cfg);
    this.pool = createPool(new URL(cfg.upstream).origin, {
      connections: cfg.connections,
      connectTimeoutMs: cfg.timeouts.connect,
      headersTimeoutMs: cfg.timeouts.headers,
      bodyTimeoutMs: cfg.timeouts.body,
      tls: cfg.tls,
    });
    if (cfg.tls?.insecureSkipVerify) opts.logger.warn('app.tls.insecureSkipVerify is on: the app certificate is NOT verified');
  }

  get logger(): Logger {
    return this.opts.logger;
  }

  /** Forwards one request to the app; resolves when the exchange is over. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const id = randomUUID();
    const method = req.method ?? 'GET';
    const logger = this.opts.logger;
    const client = req.socket.remoteAddress;
    const refused = (reason: Reason, fields: Record<string, unknown> = {}, extra?: Record<string, string>): Promise<void> => {
      refuse(logger, req, res, reason, id, { route: 'app', client, fields, level: statusOf(reason) >= 500 ? 'warn' : 'info' }, extra);
      return Promise.resolve();
    };
    if (wasRefused(req.socket)) {
      // Pipelined behind a request we refused: its framing cannot be trusted. Never forwarded.
      res.shouldKeepAlive = false;
      return refused('request_framing', { why: 'pipelined behind a refused request' });
    }
    const framing = requestFraming(req);
    if (!framing.ok) {
      res.shouldKeepAlive = false;
      markRefused(req.socket);
      return refused('request_framing', { why: framing.why });
    }
    const target = normaliseTarget(req.url ?? '/');
    if (!target) return refused('bad_request', { why: 'the request target cannot be parsed, or smuggles a dot segment' });
    if (!this.policy.allows(method, target)) {
      const allow = this.policy.allowedFor(target.readings).join(', ');
      return refused('app_method_denied', { allow }, { allow });
    }
    if (framing.length !== undefined && framing.length > this.cfg.maxBodyBytes) {
      res.shouldKeepAlive = false;
      markRefused(req.socket);
      return refused('body_too_large', { length: framing.length });
    }
    const headers = this.requestHeaders(req);
    if (framing.length !== undefined) headers['content-length'] = String(framing.length);
    const hasBody = framing.chunked || (framing.length ?? 0) > 0;
    const body = hasBody ? Readable.from(limited(req, this.cfg.maxBodyBytes), { objectMode: false }) : null;
    const forward = () =>
      new Promise<void>((resolve) => {
        const handler = new AppResponse(res, this.cookies, id, (reason, fields) => logRefusal(logger, req, id, reason, { route: 'app', client, fields, level: 'warn' }), logger, resolve);
        this.pool.dispatch({ path: target.forwardPath, method: method as Dispatcher.HttpMethod, headers, body, blocking: true, reset: false }, handler);
      });
    // A logout is recorded before the app sees it; one that cannot be recorded is not forwarded.
    const logout = this.opts.logout?.(target, req.headers);
    return logout ? logout.then(forward, (err: unknown) => refused('revocation_unavailable', { err: err instanceof Error ? err.message : String(err) })) : forward();
  }

  /** The headers the app gets for `req` (headers.ts: spoofable ones dropped, forwarded ones set). */
  private requestHeaders(req: IncomingMessage): Record<string, string | string[]> {
    return appRequestHeaders(req.headers, {
      peer: req.socket.remoteAddress,
      trusted: this.trusted.has(req.socket.remoteAddress),
      proto: this.opts.proto,
      sessionCookie: this.opts.sessionCookie,
      publicHost: this.opts.publicHost,
    });
  }

  /** A request with Upgrade: only websockets to the app pass; everything else is refused. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const id = randomUUID();
    const client = req.socket.remoteAddress;
    const refused = (reason: Reason, fields: Record<string, unknown>, level: 'info' | 'warn' = 'info'): void =>
      logRefusal(this.opts.logger, req, id, reason, { route: 'app', client, fields: { upgrade: req.headers.upgrade, ...fields }, level });
    const refuseUpgrade = (reason: Reason, why: string): void => {
      refused(reason, { why });
      refuseSocket(socket, reason, id);
    };
    socket.on('error', () => socket.destroy());
    const framing = requestFraming(req);
    const target = normaliseTarget(req.url ?? '/');
    const wantsWebsocket = String(req.headers.upgrade ?? '').trim().toLowerCase() === 'websocket';
    if (!this.cfg.websockets || !wantsWebsocket) return refuseUpgrade('bad_request', this.cfg.websockets ? 'only websocket upgrades pass' : 'app.websockets is off');
    if (!framing.ok || framing.chunked || (framing.length ?? 0) > 0) return refuseUpgrade('request_framing', 'an upgrade request carries no body');
    if (!target) return refuseUpgrade('bad_request', 'the request target cannot be parsed, or smuggles a dot segment');
    if (req.method !== 'GET' || !this.policy.allows('GET', target)) return refuseUpgrade('app_method_denied', 'websockets are GET, and GET must be allowed on the path');
    const headers = this.requestHeaders(req);
    this.pool.dispatch({ path: target.forwardPath, method: 'GET', headers, upgrade: 'websocket' }, new AppUpgrade(socket, head, this, id, (reason, fields) => refused(reason, fields, 'warn')));
  }

  /** Pipes an upgraded client socket and app socket; either side ending ends both. */
  tunnel(client: Duplex, app: Duplex): void {
    const idle = this.cfg.timeouts.body;
    const cut = () => {
      client.destroy();
      app.destroy();
      this.tunnels.delete(client);
    };
    this.tunnels.add(client);
    for (const s of [client, app]) {
      s.on('error', cut);
      s.on('close', cut);
      if ('setTimeout' in s && typeof s.setTimeout === 'function') (s as import('node:net').Socket).setTimeout(idle, cut);
    }
    client.pipe(app);
    app.pipe(client);
  }

  async close(): Promise<void> {
    for (const t of this.tunnels) t.destroy();
    this.tunnels.clear();
    await this.pool.destroy();
  }
}
