// What the data route knows about one request and hands to the provider that owns its URI:
// the shape the providers, the relay and the data route share.
import type { IncomingHttpHeaders } from 'node:http';
import type { Reason } from '../reasons.ts';
import type { DataUri } from '../uri.ts';

/** What the data route knows about one request, handed to the provider that owns the URI. */
export interface DataRequest {
  readonly id: string;
  readonly method: 'GET' | 'HEAD';
  readonly uri: DataUri;
  /** decoded path segments below the provider's match prefix */
  readonly rest: readonly string[];
  /** the client's headers: providers read Range and conditionals only */
  readonly headers: IncomingHttpHeaders;
  /** filled in by the provider for the audit event */
  readonly outcome: Outcome;
  /**
   * Response header fields every answer to this request carries (HSTS, referrer policy,
   * request id, CORS), as a flat [name, value, …] list: providers send them with their own
   * in one `writeHead` (http/data-head.ts `writeDataHead`, http/answer.ts `refuseData`).
   */
  readonly head: readonly string[];
  /**
   * Set by a provider while it holds an upstream exchange open; told once if the client goes
   * away before the response has finished (by the data route's one 'close' listener).
   */
  upstream: UpstreamExchange | undefined;
}

/**
 * An upstream exchange in flight. An object with a method, not a closure: a closure made per
 * request and kept on the request cost about a fifth of the 1 KiB throughput, its objects
 * surviving into the old generation (docs/performance.md).
 */
export interface UpstreamExchange {
  clientGone(): void;
}

export interface Outcome {
  reason: Reason;
  bytes: number;
  /** the provider kind's own detail for the logs (never a credential or upstream URL) */
  detail?: string;
}
