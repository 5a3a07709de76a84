// The one interface every upstream kind implements (http, local, s3, gcs, azure, redis).
// The data route resolves a URI to a provider, authorizes it, then hands over the response.
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Reason } from '../reasons.js';
import type { DataUri } from './uri.js';

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
   * in one `writeHead` (relay/headers.ts `writeDataHead`, server/respond.ts `refuseData`).
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

export interface Presigned {
  url: string;
  /** ISO 8601 */
  expiresAt: string;
}

export interface Provider {
  readonly name: string;
  readonly kind: string;
  /** canonical URI prefix this provider owns */
  readonly match: string;
  /** when set, only tokens whose org (and project) is listed may use this provider */
  readonly orgs: ReadonlySet<string> | undefined;
  readonly projects: ReadonlySet<string> | undefined;
  /**
   * Writes the whole response (status, headers, body) for `req` into `res`; must never
   * leave `res` without an answer. A promise, when it returns one, settles once the
   * response is handed off and rejects only on a fault of its own (answered 500). A kind
   * that hands the exchange to an object that answers every outcome itself (the relay)
   * returns nothing: no promise to make and settle per request.
   */
  serve(req: DataRequest, res: ServerResponse): Promise<void> | void;
  /** presign-capable kinds only */
  presign?(uri: DataUri, rest: readonly string[], opts?: { now?: Date; ttlSeconds?: number }): Promise<Presigned>;
  close(): Promise<void>;
}
