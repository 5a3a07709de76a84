// GET|HEAD /v1/data?uri=…: authenticate → parse the URI → resolve its provider →
// authorize → let the provider answer → one audit event when the response is over.
//
// This is the path every image an annotator loads takes, so it is written to do little:
// a cached token against the in-memory revocation store is checked without a promise, the
// answer's header fields are collected in one flat list and sent with one writeHead (no
// setHeader before it), and one 'close' listener ends everything (in-flight count, upstream
// abort, metrics, audit).
import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { authorize } from '../auth/scope.ts';
import { auditEvent, decisionFor } from '../observe/audit.ts';
import { runningDestination, setFields } from '../http/data-head.ts';
import type { DataRequest, Outcome } from '../http/data-request.ts';
import type { Resolved } from '../providers/registry.ts';
import { parseDataUri, UriError, type DataUri } from '../uri.ts';
import { statusOf, type Reason } from '../reasons.ts';
import type { InFlight } from './in-flight.ts';
import type { Admission, AdmitResult, LimitedTransfer } from '../limits/limiter.ts';
import type { Provider } from '../providers/types.ts';
import { sendError } from '../http/answer.ts';
import type { Runtime } from '../runtime.ts';
import { authenticateData, claimedBy, type Authenticated, type Introspected } from './authenticate.ts';

export const DATA_METHODS = 'GET, HEAD, OPTIONS';

export interface DataQuery {
  uri: string | null;
  token: string | null;
  /** a repeated `uri` or `token`: refused rather than guessed */
  ambiguous: boolean;
}

/**
 * `?a=1&b=2` → the values of `uri` and `token`, exactly as URLSearchParams reads them. Names
 * without '%' or '+' and values decodeURIComponent accepts are read here without building
 * the whole parameter list; anything else goes to URLSearchParams itself.
 */
export function dataQuery(url: string): DataQuery {
  const q = url.indexOf('?');
  if (q === -1) return { uri: null, token: null, ambiguous: false };
  // URLSearchParams drops one leading '?' of its input (so `??uri=` names `uri`): so do we.
  const from = url.charCodeAt(q + 1) === 63 /* '?' */ ? q + 2 : q + 1;
  return plainQuery(url, from) ?? searchParamsQuery(url.slice(q + 1));
}

function searchParamsQuery(query: string): DataQuery {
  const params = new URLSearchParams(query);
  const uris = params.getAll('uri');
  const tokens = params.getAll('token');
  return { uri: uris[0] ?? null, token: tokens[0] ?? null, ambiguous: uris.length > 1 || tokens.length > 1 };
}

function plainQuery(url: string, from: number): DataQuery | undefined {
  const out: DataQuery = { uri: null, token: null, ambiguous: false };
  let at = from;
  while (at < url.length) {
    let amp = url.indexOf('&', at);
    if (amp === -1) amp = url.length;
    let eq = url.indexOf('=', at);
    if (eq === -1 || eq > amp) eq = amp;
    const name = url.slice(at, eq);
    if (name.includes('%') || name.includes('+')) return undefined;
    if (name === 'uri' || name === 'token') {
      const value = decodeValue(eq < amp ? url.slice(eq + 1, amp) : '');
      if (value === undefined) return undefined;
      if (out[name] !== null) out.ambiguous = true;
      else out[name] = value;
    }
    at = amp + 1;
  }
  return out;
}

/** The same encoded URIs come again and again (annotators reload images): decode them once. */
const decoded = new LRUCache<string, string>({ max: 4096 });

/** Lone surrogates, which URLSearchParams (not decodeURIComponent) turns into U+FFFD. */
const SURROGATE = /[\uD800-\uDFFF]/;

function decodeValue(raw: string): string | undefined {
  // Node's parser hands over latin1 URLs, so this is for direct callers only.
  if (SURROGATE.test(raw)) return undefined;
  const spaced = raw.includes('+') ? raw.replaceAll('+', ' ') : raw;
  if (!spaced.includes('%')) return spaced;
  let value = decoded.get(spaced);
  if (value !== undefined) return value;
  try {
    value = decodeURIComponent(spaced);
  } catch {
    return undefined; // malformed or not UTF-8: URLSearchParams' lenient reading decides
  }
  if (spaced.length <= 512) decoded.set(spaced, value); // bounded in size too, against hostile floods
  return value;
}

/** The exchange a response belongs to, for one 'close' listener shared by every response. */
const exchangeOf = Symbol('keyhole.dataExchange');
type ExchangeResponse = ServerResponse & { [exchangeOf]?: DataExchange };
function onResponseClose(this: ExchangeResponse): void {
  // Once: the server also emits 'close' for a pipelined response whose connection died
  // before its turn, and Node 24 emits it itself as well.
  const exchange = this[exchangeOf];
  this[exchangeOf] = undefined;
  exchange?.closed();
}

/**
 * The checks of one data request, shared by the routes that decide one: /v1/data, which then
 * serves it (DataExchange), and /v1/authorize, which answers the decision for a data plane
 * to serve (authorize-route.ts). authenticate → parse the URI → resolve its provider →
 * authorize → limits; then `admitted`, the route's own step. Every refusal goes through
 * `refuse`, with the reason, status and header fields of /v1/data.
 */
export abstract class DataDecision implements LimitedTransfer {
  protected readonly started = performance.now();
  readonly id: string;
  readonly outcome: Outcome = { reason: 'ok', bytes: 0 };
  /** header fields of every answer: security headers, request id, CORS */
  readonly head: string[];
  protected sub: string | undefined;
  protected jti: string | undefined;
  /** sub and jti come from a refused token */
  protected unverified: true | undefined;
  protected org: string | undefined;
  protected providerName: string | undefined;
  protected uriText: string | undefined;
  protected tokenSource: string | undefined;
  protected dataReq: DataRequest | undefined;
  /** admitted by the limits (rt.limiter): told when the response is over */
  protected admission: Admission | undefined;
  /** the response closed: a limits answer that arrives later must not serve it */
  protected over = false;
  /**
   * Read now: a connection the client resets has no peer address any more by the time the
   * response closes (getpeername fails), and the audit event must still say who it was.
   */
  protected readonly client: string | undefined;

  protected readonly rt: Runtime;
  protected readonly req: IncomingMessage;
  protected readonly res: ServerResponse;
  constructor(rt: Runtime, req: IncomingMessage, res: ServerResponse, id: string, client: string | undefined, head: string[]) {
    this.rt = rt;
    this.req = req;
    this.res = res;
    this.id = id;
    this.client = client;
    this.head = head;
  }

  /** What the request was admitted to: the route's own step (serve the bytes, or answer the decision). */
  protected abstract admitted(provider: Provider, dataReq: DataRequest): Promise<void> | void;

  /**
   * The URI a refused request asked for, for its audit event only: canonical when it parses,
   * else as given (cut short). The audit log redacts credentials in either (observe/audit.ts).
   */
  protected noteUri(raw: string | null): void {
    if (raw === null) return;
    const max = this.rt.config.server.maxUriLength;
    try {
      this.uriText = parseDataUri(raw, max).canonical;
    } catch {
      this.uriText = raw.slice(0, max);
    }
  }

  protected refuse(reason: Reason, extra?: Record<string, string>): void {
    this.outcome.reason = reason;
    sendError(this.res, reason, this.id, extra, this.head);
  }

  /** `midBody: cut`: the subject reached a byte quota while this body streams. */
  cutForQuota(detail: string): void {
    const res = this.res;
    if (res.writableFinished || res.destroyed) return;
    this.outcome.reason = 'quota_exceeded';
    this.outcome.detail = detail;
    res.destroy();
  }

  /**
   * The decision for a GET or HEAD of `query`: refused here (answered through `refuse`), or
   * handed to `admitted`. A promise only when something had to be waited for.
   */
  protected decide(method: 'GET' | 'HEAD', query: DataQuery): Promise<void> | void {
    const req = this.req;
    if (query.ambiguous) {
      this.noteUri(query.uri);
      return this.refuse('bad_request');
    }
    // A browser loading the answer as a script, worker or stylesheet: nobody is asked anything.
    const running = runningDestination(req.headers);
    if (running !== undefined) {
      this.noteUri(query.uri);
      this.outcome.detail = running;
      return this.refuse('data_destination_refused');
    }
    const auth = authenticateData(this.rt, req.headers, query.token);
    return auth instanceof Promise ? auth.then((a) => this.authenticated(a, method, query.uri)) : this.authenticated(auth, method, query.uri);
  }

  private authenticated(auth: Authenticated | Introspected, method: 'GET' | 'HEAD', rawUri: string | null): Promise<void> | void {
    const { rt } = this;
    this.tokenSource = auth.source;
    if (!auth.ok) {
      // Who the refused token claims to be, and what was asked: nothing is served from either.
      ({ sub: this.sub, jti: this.jti, unverified: this.unverified } = claimedBy(auth));
      this.noteUri(rawUri);
      return this.refuse(auth.reason, statusOf(auth.reason) === 401 ? { 'www-authenticate': 'Bearer realm="keyhole"' } : undefined);
    }
    this.sub = auth.claims.sub;
    this.jti = auth.claims.jti;
    this.org = auth.claims.org;

    if (rawUri === null) return this.refuse('uri_missing');
    let uri: DataUri;
    let resolved: Resolved | undefined;
    try {
      uri = parseDataUri(rawUri, rt.config.server.maxUriLength);
      this.uriText = uri.canonical;
      // Refuses a URI that names a folder (uri_folder), before any provider sees it.
      resolved = rt.registry.resolve(uri);
    } catch (err) {
      // Unparsed, the raw URI may carry anything, e.g. a presigned URL's signature: the
      // audit log redacts it (observe/audit.ts), as it does every URI it is given.
      this.uriText ??= rawUri.slice(0, rt.config.server.maxUriLength);
      return this.refuse(err instanceof UriError ? err.reason : 'uri_invalid');
    }
    if (!resolved) return this.refuse('no_provider');
    const provider = resolved.provider;
    this.providerName = provider.name;

    const denied = authorize(auth, uri.canonical, provider);
    if (denied) return this.refuse(denied);

    const dataReq: DataRequest = { id: this.id, method, uri, rest: resolved.rest, headers: this.req.headers, outcome: this.outcome, head: this.head, upstream: undefined };
    this.dataReq = dataReq;
    // Limits (off: one property read). Decided locally unless the store must be asked.
    const limiter = rt.limiter;
    if (limiter !== undefined) {
      const admitted = limiter.admit(auth.claims, auth.source === 'introspect' ? undefined : auth.token, provider.name, uri.canonical, this);
      if (admitted instanceof Promise) return admitted.then((a) => this.limited(a, provider, dataReq));
      if (admitted !== undefined) return this.limited(admitted, provider, dataReq);
    }
    return this.admitted(provider, dataReq);
  }

  /** The limits' answer: refused (429 with Retry-After, or 503), or served and charged. */
  private limited(admitted: AdmitResult, provider: Provider, dataReq: DataRequest): Promise<void> | void {
    if (admitted === undefined) return this.over ? undefined : this.admitted(provider, dataReq);
    if (admitted.refused) {
      this.outcome.detail = admitted.detail;
      if (this.over) return;
      return this.refuse(admitted.reason, admitted.retryAfter !== undefined ? { 'retry-after': String(admitted.retryAfter) } : undefined);
    }
    if (this.over) return admitted.done(false);
    this.admission = admitted;
    return this.admitted(provider, dataReq);
  }
}

/** One data request from head to 'close'. */
class DataExchange extends DataDecision {
  private readonly inflight: InFlight<Runtime>;
  constructor(rt: Runtime, req: IncomingMessage, res: ServerResponse, inflight: InFlight<Runtime>) {
    const id = randomUUID();
    super(rt, req, res, id, req.socket.remoteAddress, rt.cors.fields(req.headers.origin, [...rt.securityHeaders, 'x-request-id', id]));
    this.inflight = inflight;
    inflight.add(rt);
    // A shared listener, not a closure per request (see UpstreamExchange for why it matters).
    (res as ExchangeResponse)[exchangeOf] = this;
    res.on('close', onResponseClose);
  }

  /** The response closed (finished or cut): in-flight count, upstream abort, metrics, audit. */
  closed(): void {
    const { rt, res, outcome } = this;
    this.over = true;
    this.inflight.leave(rt);
    const aborted = !res.writableFinished;
    if (aborted) this.dataReq?.upstream?.clientGone();
    const status = res.statusCode;
    // Its object counts once a GET of it was answered (a cut body included).
    this.admission?.done(this.dataReq?.method === 'GET' && (status === 200 || status === 206));
    const provider = this.providerName ?? '-';
    const seconds = (performance.now() - this.started) / 1000;
    const decision = decisionFor(outcome.reason, status);
    rt.metrics.recordRequest(provider, status, decision, seconds, outcome.bytes, aborted);
    if (outcome.reason === 'upstream_error' || outcome.reason === 'upstream_timeout' || outcome.reason === 'upstream_status' || outcome.reason === 'upstream_credential_echo') {
      rt.metrics.upstreamErrors.labels(provider, outcome.reason).inc();
    }
    rt.audit.write(
      auditEvent({
        id: this.id, kind: 'data', sub: this.sub, jti: this.jti, unverified: this.unverified, org: this.org, provider: this.providerName, uri: this.uriText,
        decision, reason: outcome.reason, status, bytes: outcome.bytes, aborted, ms: Math.round(seconds * 1e4) / 10, client: this.client,
        tokenSource: this.tokenSource, detail: outcome.detail || undefined,
      }),
    );
  }

  run(): Promise<void> | void {
    const { req, res } = this;
    const method = req.method;
    if (method === 'OPTIONS') {
      setFields(res, this.head);
      if (!this.rt.cors.preflight(req, res, DATA_METHODS)) this.refuse('cors_origin');
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      this.noteUri(dataQuery(req.url ?? '').uri);
      return this.refuse('method_not_allowed', { allow: DATA_METHODS });
    }

    return this.decide(method, dataQuery(req.url ?? ''));
  }

  /** Admitted: the provider answers (the bytes, a redirect, or its own refusal). */
  protected admitted(provider: Provider, dataReq: DataRequest): Promise<void> | void {
    const { rt } = this;
    const failed = (err: unknown): void => {
      rt.logger.error({ err, requestId: this.id, provider: provider.name }, 'provider failed');
      this.outcome.reason = 'internal';
      sendError(this.res, 'internal', this.id, undefined, this.head);
    };
    try {
      return provider.serve(dataReq, this.res)?.catch(failed);
    } catch (err) {
      return failed(err);
    }
  }
}

/**
 * Answers one data request. It counts itself in flight (against `rt`, in `inflight`) until its
 * response closes. Resolves (when it returns a promise) once the provider is done.
 */
export function handleData(rt: Runtime, req: IncomingMessage, res: ServerResponse, inflight: InFlight<Runtime>): Promise<void> | void {
  return new DataExchange(rt, req, res, inflight).run();
}
