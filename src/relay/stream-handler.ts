// What every handler that streams an upstream answer to a client shares (the data relay,
// the app proxy and its websocket handshake): the controller, the abort when the client has
// gone or goes, backpressure from the client's socket to the upstream, and the reason a
// failed exchange is answered with. Each subclass keeps only its policy: which head it
// writes, what it refuses, what it audits.
import type { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Reason } from '../reasons.ts';
import { AddressRefused } from './ssrf.ts';
import { errors } from './undici.ts';

/** The message of the abort that follows the client away (its 'close' or a destroyed socket). */
const CLIENT_GONE = 'client closed the connection';

/** undici's failure → the reason the client is told: a timeout, the SSRF guard, anything else. */
export function upstreamFailure(err: Error): Reason {
  if (err instanceof errors.ConnectTimeoutError || err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError) return 'upstream_timeout';
  if (err instanceof AddressRefused) return 'upstream_address_refused';
  return 'upstream_error';
}

export abstract class StreamingHandler implements Dispatcher.DispatchHandler {
  protected controller: Dispatcher.DispatchController | undefined;
  /** made on the first full write only: most clients never fill their socket */
  private onDrain: (() => void) | undefined;

  protected readonly out: Writable;
  constructor(
    /** where the answer goes: a ServerResponse, or a raw socket for an upgrade */
    out: Writable,
  ) {
    this.out = out;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.out.destroyed) controller.abort(new Error(CLIENT_GONE));
  }

  /** The client left: the upstream request is aborted (its socket returned or closed). */
  clientGone(): void {
    this.controller?.abort(new Error(CLIENT_GONE));
  }

  /** Writes bytes to the client; a full socket pauses the upstream until it drains. */
  protected forward(controller: Dispatcher.DispatchController, bytes: Buffer): void {
    if (!this.out.write(bytes) && !controller.paused) {
      controller.pause();
      this.onDrain ??= () => this.controller?.resume();
      this.out.once('drain', this.onDrain);
    }
  }
}
