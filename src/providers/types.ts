// The one interface every upstream kind implements (http, local, s3, gcs, azure, redis).
// The data route resolves a URI to a provider, authorizes it, then hands over the response.
import type { ServerResponse } from 'node:http';
import type { DataRequest } from '../http/data-request.js';
import type { DataUri } from '../uri.js';

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
