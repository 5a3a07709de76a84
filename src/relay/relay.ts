// Streams one upstream response to the client through undici's dispatch API: no body
// buffering, backpressure both ways, aborts propagated both ways.
//  - client goes away      → the upstream request is aborted (socket returned or closed)
//  - upstream dies mid-body → the client response is destroyed, never ended as complete
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { errors } from './undici.js';
import type { DataRequest, UpstreamExchange } from '../providers/types.js';
import type { Reason } from '../reasons.js';
import { refuseData } from '../server/respond.js';
import { relayedResponseFields } from './headers.js';
import { AddressRefused } from './ssrf.js';

export interface RelayTarget {
  dispatcher: Dispatcher;
  /** origin-relative path, already encoded */
  path: string;
  /** the upstream request's headers: credentials injected, client headers allowlisted */
  headers: Record<string, string>;
}

/** Upstream statuses passed through as they are; anything else is the upstream's problem. */
const PASS_STATUS = new Set([200, 206, 304, 416]);

function reasonFor(err: Error): { status: number; reason: Reason } {
  if (err instanceof errors.ConnectTimeoutError || err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError) {
    return { status: 504, reason: 'upstream_timeout' };
  }
  if (err instanceof AddressRefused) return { status: 502, reason: 'upstream_address_refused' };
  return { status: 502, reason: 'upstream_error' };
}

class RelayHandler implements Dispatcher.DispatchHandler, UpstreamExchange {
  private controller: Dispatcher.DispatchController | undefined;
  private passing = false;
  private readonly onDrain = () => this.controller?.resume();

  constructor(
    private readonly res: ServerResponse,
    private readonly req: DataRequest,
  ) {
    req.upstream = this;
  }

  clientGone(): void {
    this.controller?.abort(new Error('client closed the connection'));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.res.destroyed) controller.abort(new Error('client closed the connection'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    const { res, req } = this;
    if (PASS_STATUS.has(statusCode)) {
      this.passing = true;
      req.outcome.reason = statusCode === 416 ? 'range_not_satisfiable' : 'ok';
      res.writeHead(statusCode, relayedResponseFields(headers, req.head, statusCode));
      return;
    }
    // The upstream's error body stays with us: it may name buckets, hosts or keys.
    const notFound = statusCode === 404 || statusCode === 410;
    req.outcome.reason = notFound ? 'not_found' : 'upstream_status';
    req.outcome.detail = `upstream status ${statusCode}`;
    refuseData(res, req, notFound ? 404 : 502, req.outcome.reason);
    // Drain a small error body to keep the connection; cut a large or unbounded one.
    const length = Number(headers['content-length']);
    if (!(length <= 65536)) controller.abort(new Error('discarding upstream error body'));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.passing || this.req.method === 'HEAD') return;
    this.req.outcome.bytes += chunk.length;
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', this.onDrain);
    }
  }

  onResponseEnd(): void {
    this.req.upstream = undefined;
    if (this.passing) this.res.end();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    const { res, req } = this;
    req.upstream = undefined;
    if (res.destroyed || (res.writableEnded && !this.passing)) {
      // The client left first, or we cut an error body: the abort we asked for, not a fault.
      return;
    }
    const { status, reason } = reasonFor(err);
    req.outcome.reason = reason;
    req.outcome.detail = err.message;
    if (res.headersSent) res.destroy(err);
    else refuseData(res, req, status, reason);
  }
}

/**
 * Relays one request to `target`. The handler answers every outcome itself (the upstream's
 * answer, its failure, the client leaving), so there is nothing to wait for.
 */
export function relay(res: ServerResponse, req: DataRequest, target: RelayTarget): void {
  target.dispatcher.dispatch({ path: target.path, method: req.method, headers: target.headers, blocking: false, reset: false }, new RelayHandler(res, req));
}
