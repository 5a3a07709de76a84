// The one interface every upstream kind implements (http, local, s3, gcs, azure, redis).
// The data route resolves a URI to a provider, authorizes it, then hands over the response.
import type { ServerResponse } from 'node:http';
import type { DataRequest } from '../http/data-request.ts';
import type { DataUri } from '../uri.ts';
import type { Reason } from '../reasons.ts';

export interface Presigned {
  url: string;
  /** ISO 8601 */
  expiresAt: string;
}

/**
 * Credentials a provider fetches from a service (an STS role session, an Azure user delegation
 * key, a GCS token and signatures): their state, read by /readyz and /metrics.
 */
export interface CredentialState {
  /** did the last attempt give usable credentials? undefined: not asked yet */
  up: boolean | undefined;
  /** fetches from the identity service, by result */
  fetches: { ok: number; failed: number };
}

/**
 * The upstream request a data plane (nginx, Caddy, Envoy) makes for one read Keyhole allowed
 * (/v1/authorize): where, and the request header fields that carry the credential. Computed
 * from the provider's configuration and the URI's segments only, never from the client.
 */
export interface UpstreamTarget {
  /** absolute http(s) URL, path percent-encoded as it goes on the wire */
  url: string;
  /**
   * lower-case names: `authorization`, and a signature's companions (`x-amz-date`,
   * `x-amz-content-sha256`, `x-amz-security-token`, `x-ms-version`); sent exactly as given
   */
  headers: Record<string, string>;
}

/** A read a provider will not hand to a data plane, or refuses (allowlist, credentials). */
export interface UpstreamRefusal {
  refused: Reason;
  /** for the audit event: never a credential or an upstream URL */
  detail?: string;
}

export type UpstreamAnswer = UpstreamTarget | UpstreamRefusal;

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
  /**
   * The upstream request for a data plane to make (authorizer mode). Absent: the kind cannot
   * be read by a plain HTTP data plane (local files, Redis values).
   */
  upstreamRequest?(req: { uri: DataUri; rest: readonly string[]; method: 'GET' | 'HEAD' }): UpstreamAnswer | Promise<UpstreamAnswer>;
  /** presign-capable kinds only */
  presign?(uri: DataUri, rest: readonly string[], opts?: { now?: Date; ttlSeconds?: number }): Promise<Presigned>;
  /** kinds whose credentials come from a remote identity only */
  credentials?(): CredentialState | undefined;
  /**
   * Asks for credentials once, so /readyz knows before the first request; resolves with why
   * none could be had (undefined: they can), never rejects.
   */
  warm?(): Promise<string | undefined>;
  close(): Promise<void>;
}
