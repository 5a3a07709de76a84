// Streams one upstream response to the client through undici's dispatch API: no body
// buffering, backpressure both ways, aborts propagated both ways.
//  - client goes away      → the upstream request is aborted (socket returned or closed)
//  - upstream dies mid-body → the client response is destroyed, never ended as complete
//  - 1xx before the answer  → skipped (RFC 9110 §15.2); 101 to a plain request is a fault
//  - the answer repeats the credential Keyhole injected → refused before the head (502
//    upstream_credential_echo), or the body cut before any byte of it leaves
import { subscribe } from 'node:diagnostics_channel';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Dispatcher } from 'undici';
import type { InjectedSecrets } from './echo-guard.ts';
import type { DataRequest, UpstreamExchange } from '../http/data-request.ts';
import { refuseData } from '../http/answer.ts';
import { relayedResponseFields } from '../http/data-head.ts';
import { StreamingHandler, upstreamFailure } from './stream-handler.ts';

export interface RelayTarget {
  dispatcher: Dispatcher;
  /** origin-relative path, already encoded */
  path: string;
  /** the upstream request's headers: credentials injected, client headers allowlisted */
  headers: Record<string, string>;
  /**
   * The credential injected into `headers`, built once per provider: an answer that repeats
   * it is refused. None for kinds that put no static secret on the wire.
   */
  secrets?: InjectedSecrets | undefined;
}

/** Upstream statuses relayed with their body. 416 is relayed as a head only. */
const PASS_STATUS = new Set([200, 206, 304]);

/** The most of an upstream error body read to keep its connection; more is cut. */
const DRAIN_LIMIT = 65536;

/**
 * undici ends a body framed by the closing of the connection (no Content-Length, not
 * chunked) as complete when the upstream resets the connection as well as when it closes it
 * (client-h1.js onHttpSocketError: ECONNRESET finishes the parser). A reset is an abort: the
 * body may be a part. Every upstream socket gets an 'error' listener before undici's own
 * and one after it; between them `resetting` is true, and a body that ends then was ended by
 * a reset. Per connection, not per request: two listeners where undici announces the socket.
 */
let resetting = false;
function resetBegins(err: NodeJS.ErrnoException): void {
  if (err.code === 'ECONNRESET') resetting = true;
}
function resetEnds(): void {
  resetting = false;
}
subscribe('undici:client:connected', (message) => {
  const socket = (message as { socket: Socket }).socket;
  socket.prependListener('error', resetBegins);
  socket.on('error', resetEnds);
});

/** A body without Content-Length or chunked coding: it ends where the connection closes. */
function framedByClose(headers: IncomingHttpHeaders): boolean {
  if (headers['content-length'] !== undefined) return false;
  const te = headers['transfer-encoding'];
  return te === undefined || (typeof te === 'string' && !/chunked\s*$/i.test(te));
}

class RelayHandler extends StreamingHandler implements UpstreamExchange {
  /** the answer's body goes to the client */
  private passing = false;
  /** the body ends where the upstream closes the connection */
  private untilClose = false;
  /** the end of the last chunk, held back because it begins a secret */
  private held: Buffer | undefined;
  /**
   * With secrets to watch for, the head waits for the first body bytes that may leave (Node
   * sends it with them anyway): a secret in the first chunk still gets a clean 502.
   */
  private head: string[] | undefined;
  private status = 0;

  private readonly res: ServerResponse;
  private readonly req: DataRequest;
  private readonly secrets: InjectedSecrets | undefined;
  constructor(
    res: ServerResponse,
    req: DataRequest,
    secrets: InjectedSecrets | undefined,
  ) {
    super(res);
    this.res = res;
    this.req = req;
    this.secrets = secrets;
    req.upstream = this;
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    const { res, req } = this;
    if (statusCode < 200) {
      // Interim: the answer follows. A protocol switch nobody asked for ends the exchange.
      if (statusCode === 101) controller.abort(new Error('upstream answered 101 Switching Protocols to a request without Upgrade'));
      return;
    }
    if (this.secrets !== undefined) {
      const name = this.secrets.headerHolding(headers);
      if (name !== undefined) return this.echoed(controller, `its ${name} header`);
    }
    if (PASS_STATUS.has(statusCode)) {
      this.passing = true;
      this.untilClose = req.method !== 'HEAD' && statusCode !== 304 && framedByClose(headers);
      req.outcome.reason = 'ok';
      const fields = relayedResponseFields(headers, req.head, statusCode);
      if (this.secrets === undefined) res.writeHead(statusCode, fields);
      else {
        this.head = fields;
        this.status = statusCode;
      }
      return;
    }
    if (statusCode === 416) {
      // The client needs the status and `bytes */length`; the upstream's page stays here.
      req.outcome.reason = 'range_not_satisfiable';
      const fields = relayedResponseFields({ 'content-range': headers['content-range'] }, req.head, statusCode);
      fields.push('content-length', '0');
      res.writeHead(416, fields);
      res.end();
      this.discardBody(controller, headers);
      return;
    }
    // The upstream's error body stays with us: it may name buckets, hosts or keys.
    const notFound = statusCode === 404 || statusCode === 410;
    req.outcome.reason = notFound ? 'not_found' : 'upstream_status';
    req.outcome.detail = `upstream status ${statusCode}`;
    refuseData(res, req, req.outcome.reason);
    this.discardBody(controller, headers);
  }

  /** Drains a small body not relayed, to keep the connection; cuts a large or unbounded one. */
  private discardBody(controller: Dispatcher.DispatchController, headers: IncomingHttpHeaders): void {
    const length = Number(headers['content-length']);
    if (!(length <= DRAIN_LIMIT)) controller.abort(new Error('discarding upstream error body'));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.passing || this.req.method === 'HEAD') return;
    const secrets = this.secrets;
    if (secrets === undefined) return this.send(controller, chunk);
    let data = chunk;
    const held = this.held;
    if (held !== undefined) {
      this.held = undefined;
      if (chunk.length < secrets.longest) {
        data = Buffer.concat([held, chunk]);
      } else {
        // A secret that starts in `held` ends within the chunk's first `longest - 1` bytes.
        if (secrets.foundIn(Buffer.concat([held, chunk.subarray(0, secrets.longest - 1)]))) return this.echoed(controller, 'its body');
        this.send(controller, held);
      }
    }
    if (secrets.foundIn(data)) return this.echoed(controller, 'its body');
    const pending = secrets.pendingTail(data);
    if (pending > 0) {
      this.held = Buffer.from(data.subarray(data.length - pending));
      data = data.subarray(0, data.length - pending);
    }
    if (data.length > 0) this.send(controller, data);
  }

  /** Sends the head that waited for the body, if one did. */
  private sendHead(): void {
    if (this.head === undefined) return;
    this.res.writeHead(this.status, this.head);
    this.head = undefined;
  }

  private send(controller: Dispatcher.DispatchController, bytes: Buffer): void {
    this.sendHead();
    this.req.outcome.bytes += bytes.length;
    this.forward(controller, bytes);
  }

  /** The upstream repeated the injected credential: refuse before the head, or cut the body. */
  private echoed(controller: Dispatcher.DispatchController, where: string): void {
    const { res, req } = this;
    this.passing = false;
    this.held = undefined;
    this.head = undefined;
    req.outcome.reason = 'upstream_credential_echo';
    req.outcome.detail = `the upstream answer repeated the injected credential in ${where}`;
    if (res.headersSent) res.destroy();
    else refuseData(res, req, 'upstream_credential_echo');
    controller.abort(new Error('upstream echoed the injected credential'));
  }

  onResponseEnd(controller: Dispatcher.DispatchController): void {
    const { res, req } = this;
    req.upstream = undefined;
    if (!this.passing) return;
    if (this.untilClose && resetting) {
      req.outcome.reason = 'upstream_error';
      req.outcome.detail = 'the upstream reset the connection that ends its body: the body may be cut short';
      if (res.headersSent) res.destroy();
      else {
        this.head = undefined;
        refuseData(res, req, 'upstream_error');
      }
      return;
    }
    const held = this.held;
    if (held !== undefined) {
      // Nothing follows: the secret it began never came.
      this.held = undefined;
      this.send(controller, held);
    }
    this.sendHead();
    res.end();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    const { res, req } = this;
    req.upstream = undefined;
    if (res.destroyed || (res.writableEnded && !this.passing)) {
      // The client left first, or we cut an error body or an echo: the abort we asked for.
      return;
    }
    const reason = upstreamFailure(err);
    req.outcome.reason = reason;
    req.outcome.detail = err.message;
    if (res.headersSent) res.destroy(err);
    else refuseData(res, req, reason);
  }
}

/**
 * Relays one request to `target`. The handler answers every outcome itself (the upstream's
 * answer, its failure, the client leaving), so there is nothing to wait for.
 */
export function relay(res: ServerResponse, req: DataRequest, target: RelayTarget): void {
  target.dispatcher.dispatch({ path: target.path, method: req.method, headers: target.headers, blocking: false, reset: false }, new RelayHandler(res, req, target.secrets));
}
