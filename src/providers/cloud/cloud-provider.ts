// The part s3, gcs and azure share: URI → allowed object, TTL and stable signing time,
// the minted-URL cache, and the two modes. presign answers a redirect to a URL for the
// browser; proxy signs a URL for Keyhole itself (or, with a keyless identity, reads with its
// OAuth token) and streams the bytes through the relay.
import type { ServerResponse } from 'node:http';
import type { Pool } from 'undici';
import { forwardedRequestHeaders, writeDataHead } from '../../http/data-head.ts';
import { createPool } from '../../relay/pool.ts';
import { relay } from '../../relay/relay.ts';
import { InjectedSecrets } from '../../relay/echo-guard.ts';
import { refuseData } from '../../http/answer.ts';
import { contentTypeFor } from '../content-type.ts';
import type { DataRequest } from '../../http/data-request.ts';
import type { CredentialState, Presigned, Provider, UpstreamAnswer, UpstreamTarget } from '../types.ts';
import type { DataUri } from '../../uri.ts';
import { Allowlist, type ObjectRef } from './allowlist.ts';
import { encodeRfc3986 } from './encode.ts';
import { CloudRefusal } from './errors.ts';
import { MintedCache } from './minted.ts';
import type { CloudCommonConfig } from './schema.ts';
import { stableTimes } from './window.ts';

/** Who the URL is for: the browser (public endpoint) or Keyhole's own fetch. */
export type Audience = 'public' | 'internal';

export interface ResponseOverrides {
  contentType?: string;
  contentDisposition?: string;
}

export interface SignInput {
  ref: ObjectRef;
  method: 'GET' | 'HEAD';
  audience: Audience;
  /** ms epoch, whole seconds */
  signAt: number;
  ttlSeconds: number;
  overrides: ResponseOverrides;
}

/** What each kind supplies: where an object lives in a URI, and how to sign a URL for it. */
export interface CloudSigner {
  /** bucket and key named by a URI this provider owns (allowlist not yet applied) */
  locate(uri: DataUri): ObjectRef;
  /**
   * Makes sure credentials are usable for a while and returns their identity (part of
   * the cache key, so rotated credentials mint new URLs) and, for temporary ones, when
   * they expire. Throws when no credentials can be had.
   */
  prepare(nowMs: number): Promise<{ identity: string; notAfter?: number | undefined }>;
  sign(input: SignInput): Promise<string>;
  /**
   * Proxy mode without a signature: a keyless identity's OAuth token, and the unsigned URL of
   * an object it reads. Absent: proxy mode fetches a signed URL.
   */
  bearer?: BearerAccess | undefined;
  /**
   * A request signed in its header fields (S3 SigV4: Authorization, x-amz-date, …) for a data
   * plane to send as given (authorizer mode). Absent: the data plane gets a URL signed in its
   * query, as Keyhole's own proxy mode fetches.
   */
  signHeaders?(ref: ObjectRef, method: 'GET' | 'HEAD', at: Date): Promise<UpstreamTarget>;
  /** what the signer holds open itself (a connection for its keys) */
  close?(): Promise<void>;
}

export interface BearerAccess {
  /** the token, and more request headers the service wants with it (Azure: x-ms-version) */
  token(): Promise<{ token: string; headers?: Record<string, string> | undefined }>;
  url(ref: ObjectRef): string;
}

export interface CloudProviderParts {
  name: string;
  kind: 's3' | 'gcs' | 'azure';
  match: string;
  orgs: ReadonlySet<string> | undefined;
  projects: ReadonlySet<string> | undefined;
  common: CloudCommonConfig;
  allow: Allowlist;
  signer: CloudSigner;
  /** with credentials from a remote identity: their state, which the signer's source counts into */
  credentials?: CredentialState | undefined;
  /** a clock for tests of the stable windows; Date.now otherwise */
  now?: () => number;
}

export interface MintOptions {
  method: 'GET' | 'HEAD';
  audience: Audience;
  nowMs: number;
  ttlSeconds?: number | undefined;
}

export class CloudProvider implements Provider {
  readonly name: string;
  readonly kind: string;
  readonly match: string;
  readonly orgs: ReadonlySet<string> | undefined;
  readonly projects: ReadonlySet<string> | undefined;
  /** presign mode only: a proxy-mode provider keeps its storage away from browsers */
  readonly presign: Provider['presign'];
  private readonly cache: MintedCache;
  private readonly pools = new Map<string, Pool>();
  private readonly now: () => number;

  private readonly parts: CloudProviderParts;
  constructor(parts: CloudProviderParts) {
    this.parts = parts;
    this.name = parts.name;
    this.kind = parts.kind;
    this.match = parts.match;
    this.orgs = parts.orgs;
    this.projects = parts.projects;
    this.cache = new MintedCache(parts.common.cache.maxEntries, parts.common.stable.window);
    this.now = parts.now ?? Date.now;
    this.presign = parts.common.mode === 'presign' ? (uri, rest, opts) => this.presignFor(uri, rest, opts) : undefined;
  }

  /** Signs (or finds in the cache) a URL for `uri`; throws CloudRefusal on a refused request. */
  async mint(uri: DataUri, opts: MintOptions): Promise<Presigned & { expiresAtMs: number }> {
    const { common, signer } = this.parts;
    const ref = this.object(uri);
    const ttl = opts.ttlSeconds ?? common.ttl.default;
    if (!Number.isInteger(ttl) || ttl < 1) throw new CloudRefusal('bad_request', 'ttl must be a positive whole number of seconds');
    if (ttl > common.ttl.max) throw new CloudRefusal('ttl_too_long', `ttl ${ttl}s is over this provider's maximum of ${common.ttl.max}s`);

    let credentials: { identity: string; notAfter?: number | undefined };
    const state = this.parts.credentials;
    try {
      credentials = await signer.prepare(opts.nowMs);
      if (state) state.up = true;
    } catch (err) {
      if (state) state.up = false;
      throw new CloudRefusal('credentials_unavailable', `no usable credentials: ${err instanceof Error ? err.message.split('\n')[0] : 'unknown'}`);
    }
    const { signAt, expiresAt } = stableTimes(opts.nowMs, ttl, common.stable.window, common.stable.minRemaining);
    const key = this.cache.enabled ? `${credentials.identity}\n${opts.audience}\n${opts.method}\n${ttl}\n${signAt}\n${ref.bucket}\n${ref.key}` : '';
    let minted = this.cache.enabled ? this.cache.get(key) : undefined;
    if (!minted) {
      let url: string;
      try {
        url = await signer.sign({ ref, method: opts.method, audience: opts.audience, signAt, ttlSeconds: ttl, overrides: this.overrides(ref) });
      } catch (err) {
        // A signer that signs remotely (IAM signBlob, a delegation key) can fail like a credential.
        if (err instanceof CloudRefusal) throw err;
        if (state) state.up = false;
        throw new CloudRefusal('credentials_unavailable', `signing failed: ${err instanceof Error ? err.message.split('\n')[0] : 'unknown'}`);
      }
      // Temporary credentials end a URL early: say so rather than promise a lifetime it lacks.
      minted = { url, expiresAt: credentials.notAfter !== undefined ? Math.min(expiresAt, credentials.notAfter) : expiresAt };
      this.cache.set(key, minted);
    }
    return { url: minted.url, expiresAt: new Date(minted.expiresAt).toISOString(), expiresAtMs: minted.expiresAt };
  }

  /** The bucket and key `uri` names, refused unless the allowlist lets it be read. */
  private object(uri: DataUri): ObjectRef {
    if (uri.canonical.endsWith('/')) throw new CloudRefusal('key_not_allowed', 'the URI names a folder, not an object');
    return this.parts.allow.check(this.parts.signer.locate(uri));
  }

  /** Proxy mode with a bearer token: the URL, the token and its headers, echo-guarded. */
  private async bearerTarget(uri: DataUri, bearer: BearerAccess): Promise<{ url: string; token: string; headers: Record<string, string> | undefined; secrets: InjectedSecrets | undefined }> {
    const ref = this.object(uri);
    const { token, headers } = await this.bearerToken(bearer);
    // The token changes about hourly: its echo forms are built once per token.
    if (this.guarded?.token !== token) this.guarded = { token, secrets: InjectedSecrets.of([Buffer.from(token)]) };
    return { url: bearer.url(ref), token, headers, secrets: this.guarded.secrets };
  }

  private async bearerToken(bearer: BearerAccess): Promise<{ token: string; headers?: Record<string, string> | undefined }> {
    const state = this.parts.credentials;
    try {
      const got = await bearer.token();
      if (state) state.up = true;
      return got;
    } catch (err) {
      if (state) state.up = false;
      throw new CloudRefusal('credentials_unavailable', `no usable credentials: ${err instanceof Error ? err.message.split('\n')[0] : 'unknown'}`);
    }
  }

  private guarded: { token: string; secrets: InjectedSecrets | undefined } | undefined;

  private overrides(ref: ObjectRef): ResponseOverrides {
    const { contentType, contentDisposition } = this.parts.common.response;
    const out: ResponseOverrides = {};
    if (!contentType && !contentDisposition) return out;
    const base = ref.key.slice(ref.key.lastIndexOf('/') + 1);
    if (contentType) out.contentType = contentType === 'byExtension' ? contentTypeFor(base) : contentType;
    if (contentDisposition) {
      // A plain quoted name when it is printable ASCII; RFC 6266's filename* otherwise.
      out.contentDisposition = /^[\x20-\x7e]*$/.test(base) && !/["\\]/.test(base) ? `${contentDisposition}; filename="${base}"` : `${contentDisposition}; filename*=UTF-8''${encodeRfc3986(base)}`;
    }
    return out;
  }

  /** The URL a browser gets for `uri` (GET, public endpoint). */
  async presignFor(uri: DataUri, _rest: readonly string[], opts: { now?: Date; ttlSeconds?: number } = {}): Promise<Presigned> {
    const { url, expiresAt } = await this.mint(uri, { method: 'GET', audience: 'public', nowMs: opts.now?.getTime() ?? this.now(), ttlSeconds: opts.ttlSeconds });
    return { url, expiresAt };
  }

  async serve(req: DataRequest, res: ServerResponse): Promise<void> {
    const proxy = this.parts.common.mode === 'proxy';
    const bearer = proxy ? this.parts.signer.bearer : undefined;
    let url: string;
    let token: string | undefined;
    let headers: Record<string, string> | undefined;
    let secrets: InjectedSecrets | undefined;
    try {
      if (bearer) ({ url, token, headers, secrets } = await this.bearerTarget(req.uri, bearer));
      else ({ url } = await this.mint(req.uri, { method: req.method, audience: proxy ? 'internal' : 'public', nowMs: this.now() }));
    } catch (err) {
      if (!(err instanceof CloudRefusal)) throw err;
      req.outcome.reason = err.reason;
      req.outcome.detail = err.message;
      refuseData(res, req, err.reason);
      return;
    }
    if (!proxy) {
      // The URL holds a signature: never cached by anyone, never sent on as a referrer.
      req.outcome.detail = 'presigned redirect';
      // (no referrer: in req.head, with every data answer)
      writeDataHead(res, this.parts.common.redirectStatus, req.head, {
        location: url,
        'cache-control': 'private, no-store',
        'x-content-type-options': 'nosniff',
        'content-length': '0',
      });
      res.end();
      return;
    }
    const target = new URL(url);
    const extra: Record<string, string> = { 'accept-encoding': 'identity', ...headers };
    if (token !== undefined) extra.authorization = `Bearer ${token}`;
    return relay(res, req, {
      dispatcher: this.pool(target.origin),
      path: target.pathname + target.search,
      headers: forwardedRequestHeaders(req.headers, extra),
      secrets,
    });
  }

  /**
   * Authorizer mode: what a data plane sends for this read, from the same allowlist and
   * credentials as serve(): a bearer token (keyless proxy mode), a request signed in its
   * headers (S3), or a URL signed for Keyhole's own fetch (the internal endpoint), in either mode.
   */
  async upstreamRequest(req: { uri: DataUri; method: 'GET' | 'HEAD' }): Promise<UpstreamAnswer> {
    const { common, signer } = this.parts;
    const bearer = common.mode === 'proxy' ? signer.bearer : undefined;
    try {
      if (bearer) {
        const { url, token, headers } = await this.bearerTarget(req.uri, bearer);
        return { url, headers: { ...headers, authorization: `Bearer ${token}` } };
      }
      if (signer.signHeaders) return await this.signedHeaders(signer.signHeaders.bind(signer), req.uri, req.method);
      const { url } = await this.mint(req.uri, { method: req.method, audience: 'internal', nowMs: this.now() });
      return { url, headers: {} };
    } catch (err) {
      if (!(err instanceof CloudRefusal)) throw err;
      return { refused: err.reason, detail: err.message };
    }
  }

  private async signedHeaders(sign: NonNullable<CloudSigner['signHeaders']>, uri: DataUri, method: 'GET' | 'HEAD'): Promise<UpstreamTarget> {
    const ref = this.object(uri);
    const state = this.parts.credentials;
    try {
      const target = await sign(ref, method, new Date(this.now()));
      if (state) state.up = true;
      return target;
    } catch (err) {
      if (state) state.up = false;
      throw new CloudRefusal('credentials_unavailable', `signing failed: ${err instanceof Error ? err.message.split('\n')[0] : 'unknown'}`);
    }
  }

  /** One pool per storage origin (one per bucket with virtual-hosted URLs; the allowlist bounds them). */
  private pool(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (!pool) {
      const { connections, timeouts, tls } = this.parts.common;
      pool = createPool(origin, { connections, connectTimeoutMs: timeouts.connect, headersTimeoutMs: timeouts.headers, bodyTimeoutMs: timeouts.body, tls });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  /** What /readyz and /metrics read, for kinds whose credentials come from a service. */
  credentials(): CredentialState | undefined {
    return this.parts.credentials;
  }

  async warm(): Promise<string | undefined> {
    const state = this.parts.credentials;
    if (!state) return undefined;
    // What this mode uses: the token (proxy mode with a bearer), or what signs.
    const bearer = this.parts.common.mode === 'proxy' ? this.parts.signer.bearer : undefined;
    try {
      if (bearer) await this.bearerToken(bearer);
      else await this.parts.signer.prepare(this.now());
      state.up = true;
      return undefined;
    } catch (err) {
      state.up = false;
      return err instanceof Error ? err.message.replace(/^no usable credentials: /, '').split('\n')[0] : String(err);
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...[...this.pools.values()].map((p) => p.close()), this.parts.signer.close?.()]);
    this.pools.clear();
  }
}
