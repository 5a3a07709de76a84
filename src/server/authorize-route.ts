// /v1/authorize: the decision of /v1/data without the bytes, for a data plane that pumps them
// itself (nginx auth_request, Caddy forward_auth, Envoy ext_authz in HTTP mode). The data
// plane passes the original request (method and URI in a header, the client's own headers as
// they came); Keyhole runs exactly the checks of /v1/data on it (data-route.ts DataDecision:
// token, scope, revocation, org/project, limits) and answers
//   allow: 200, no body, with the upstream URL and the upstream credential the provider
//          computes for this one read (X-Keyhole-Upstream, X-Keyhole-Authorization, …);
//   deny:  the status, JSON body and X-Keyhole-Reason of /v1/data's refusal.
// One audit event (kind `authorize`) per decision, under the data plane's request id when it
// sends a well-formed one. docs/authorizer.md has the contract and the data planes' configs.
//
// Its allow answers carry credentials: only the peers listed in `authorizer.peers` may ask,
// and without an `authorizer:` section the route does not exist (404).
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TrustedProxies, unmapped } from '../app/headers.ts';
import type { AuthorizerConfig } from '../config/authorizer.ts';
import type { DataRequest } from '../http/data-request.ts';
import { auditEvent, decisionFor } from '../observe/audit.ts';
import { refuse as refuseUnrouted } from '../observe/refusal.ts';
import type { Provider, UpstreamAnswer } from '../providers/types.ts';
import type { Reason } from '../reasons.ts';
import type { Runtime } from '../runtime.ts';
import { dataQuery, DataDecision } from './data-route.ts';
import { AUTHORIZE_PATH } from './routes.ts';

/** The only methods a data plane may pump. */
export const AUTHORIZED_METHODS = 'GET, HEAD';

/**
 * The upstream request header fields a provider may hand to a data plane, and the answer
 * header that carries each (a leading `x-` dropped: x-amz-date → X-Keyhole-Amz-Date).
 */
export const UPSTREAM_FIELDS: ReadonlyMap<string, string> = new Map([
  ['authorization', 'x-keyhole-authorization'],
  ['x-amz-date', 'x-keyhole-amz-date'],
  ['x-amz-content-sha256', 'x-keyhole-amz-content-sha256'],
  ['x-amz-security-token', 'x-keyhole-amz-security-token'],
  ['x-ms-version', 'x-keyhole-ms-version'],
]);

/** A data plane's request id taken as Keyhole's own: nginx $request_id, a UUID, Envoy's x-request-id. */
const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$/;

/** What the data plane says about the request it is asking for. */
export type Original = { ok: true; method: string; uri: string } | { ok: false; why: string };

/**
 * The value of a header field sent exactly once; undefined when absent, null when repeated
 * (Node joins repeats of unknown fields with ", ", which would read as another value).
 */
function single(req: Pick<IncomingMessage, 'rawHeaders'>, name: string): string | undefined | null {
  const raw = req.rawHeaders;
  let found: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== name.length || raw[i]!.toLowerCase() !== name) continue;
    if (found !== undefined) return null;
    found = raw[i + 1]!;
  }
  return found;
}

/** The one value two conventions give for the same thing (Caddy/Traefik's and nginx's names). */
function either(req: Pick<IncomingMessage, 'rawHeaders'>, a: string, b: string): string | undefined | null {
  const x = single(req, a);
  const y = single(req, b);
  if (x === null || y === null) return null;
  if (x !== undefined && y !== undefined && x !== y) return null;
  return x ?? y;
}

/**
 * The original request's method and URI (path and query), as the data plane passes them:
 * X-Forwarded-Method / X-Forwarded-Uri (Caddy forward_auth, Traefik), X-Original-Method /
 * X-Original-URI (the nginx example sets them: an auth_request subrequest is always a GET),
 * or Envoy ext_authz's own form: the check request is the original one, its path appended to
 * /v1/authorize. Each is read from one header field only: repeated or contradicting, refused.
 */
export function originalRequest(req: Pick<IncomingMessage, 'rawHeaders' | 'method' | 'url'>): Original {
  let method = either(req, 'x-forwarded-method', 'x-original-method');
  let uri = either(req, 'x-forwarded-uri', 'x-original-uri');
  if (method === null) return { ok: false, why: 'the original method is given twice' };
  if (uri === null) return { ok: false, why: 'the original URI is given twice' };
  const url = req.url ?? '';
  // Envoy: path_prefix /v1/authorize, the original path and query after it.
  const envoy = url.startsWith(`${AUTHORIZE_PATH}/`) ? url.slice(AUTHORIZE_PATH.length) : undefined;
  if (envoy !== undefined) {
    if (uri !== undefined && uri !== envoy) return { ok: false, why: 'the original URI in the path and in a header differ' };
    uri = envoy;
    method ??= req.method;
  }
  if (method === undefined || uri === undefined) return { ok: false, why: 'no original request: send X-Forwarded-Method and X-Forwarded-Uri (or X-Original-Method and X-Original-URI)' };
  if (uri.charCodeAt(0) !== 47 /* '/' */) return { ok: false, why: 'the original URI is not a path' };
  return { ok: true, method: method.toUpperCase(), uri };
}

/** Per configuration: who may ask. */
const peersOf = new WeakMap<AuthorizerConfig, TrustedProxies>();

function peers(cfg: AuthorizerConfig): TrustedProxies {
  let list = peersOf.get(cfg);
  if (list === undefined) {
    list = new TrustedProxies(cfg.peers);
    peersOf.set(cfg, list);
  }
  return list;
}

/** The client the data plane names: the last X-Forwarded-For entry (the one it added), when it is an address. */
function forwardedClient(req: IncomingMessage): string | undefined {
  const xff = req.headers['x-forwarded-for'];
  if (typeof xff !== 'string') return undefined;
  const last = xff.slice(xff.lastIndexOf(',') + 1).trim();
  return isIP(last) !== 0 ? unmapped(last) : undefined;
}

/** One decision asked by a data plane, from head to 'close'. */
class AuthorizeExchange extends DataDecision {
  private readonly trusted: boolean;
  private readonly peer: string | undefined;
  private method: 'GET' | 'HEAD' | undefined;

  constructor(rt: Runtime, req: IncomingMessage, res: ServerResponse, cfg: AuthorizerConfig) {
    const peer = req.socket.remoteAddress;
    const trusted = peers(cfg).has(peer);
    const given = trusted ? single(req, 'x-request-id') : undefined;
    const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    // The client's Origin came along: a refusal the data plane relays carries the same CORS fields as /v1/data's.
    super(rt, req, res, id, (trusted ? forwardedClient(req) : undefined) ?? peer, rt.cors.fields(req.headers.origin, ['x-request-id', id]));
    this.trusted = trusted;
    this.peer = peer;
    res.once('close', () => this.closed());
  }

  run(): Promise<void> | void {
    const { req } = this;
    if (!this.trusted) {
      this.outcome.detail = `peer ${this.peer ?? 'unknown'}`;
      return this.refuse('authorizer_peer');
    }
    const original = originalRequest(req);
    if (!original.ok) {
      this.outcome.detail = original.why;
      return this.refuse('bad_request');
    }
    const query = dataQuery(original.uri);
    if (original.method !== 'GET' && original.method !== 'HEAD') {
      this.noteUri(query.uri);
      this.outcome.detail = `original method ${original.method.slice(0, 16)}`;
      return this.refuse('method_not_allowed', { allow: AUTHORIZED_METHODS });
    }
    this.method = original.method;
    return this.decide(original.method, query);
  }

  protected override refuse(reason: Reason, extra?: Record<string, string>): void {
    // The reason as a header too: nginx's auth_request passes no body on, only what auth_request_set reads.
    super.refuse(reason, { 'x-keyhole-reason': reason, ...extra });
  }

  protected admitted(provider: Provider, dataReq: DataRequest): Promise<void> | void {
    if (provider.upstreamRequest === undefined) {
      this.outcome.detail = `kind ${provider.kind}`;
      return this.refuse('authorizer_unsupported');
    }
    let answer: UpstreamAnswer | Promise<UpstreamAnswer>;
    try {
      answer = provider.upstreamRequest({ uri: dataReq.uri, rest: dataReq.rest, method: dataReq.method });
    } catch (err) {
      return this.failed(err, provider);
    }
    if (answer instanceof Promise) return answer.then((a) => this.answer(a, provider), (err: unknown) => this.failed(err, provider));
    return this.answer(answer, provider);
  }

  private failed(err: unknown, provider: Provider): void {
    this.rt.logger.error({ err, requestId: this.id, provider: provider.name }, 'provider failed to compute the upstream request');
    this.refuse('internal');
  }

  /** Allowed: where the data plane goes, and with which credential. Never cached, never a body. */
  private answer(answer: UpstreamAnswer, provider: Provider): void {
    if (this.over) return;
    if ('refused' in answer) {
      if (answer.detail !== undefined) this.outcome.detail = answer.detail;
      return this.refuse(answer.refused);
    }
    const url = new URL(answer.url);
    const fields = this.head.slice();
    fields.push(
      'cache-control', 'no-store',
      'content-length', '0',
      'x-keyhole-provider', provider.name,
      'x-keyhole-upstream', answer.url,
      'x-keyhole-upstream-scheme', url.protocol.slice(0, -1),
      'x-keyhole-upstream-host', url.host,
      'x-keyhole-upstream-dial', `${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`,
      // The request target as it goes on the wire (path and query, encoded): for a data plane
      // that sends it through a connection pool of its own (the nginx example's upstream group).
      'x-keyhole-upstream-target', url.pathname + url.search,
      'x-keyhole-upstream-hostname', url.hostname.replace(/^\[|\]$/g, ''),
      // Percent-decoded, as UTF-8 bytes: for data planes that encode the path they substitute
      // (Caddy's rewrite). Unambiguous: no segment holds a '/', a '%' triplet or a control character (uri.ts).
      'x-keyhole-upstream-path', Buffer.from(decodeURIComponent(url.pathname), 'utf8').toString('latin1'),
    );
    for (const name in answer.headers) {
      const field = UPSTREAM_FIELDS.get(name);
      if (field === undefined) return this.failed(new Error(`provider ${provider.name} set upstream header ${name}, which no data plane is told about`), provider);
      fields.push(field, answer.headers[name]!);
    }
    this.res.writeHead(200, fields);
    this.res.end();
  }

  /** The response closed: metrics, the limits told, one audit event. */
  private closed(): void {
    const { rt, res, outcome } = this;
    this.over = true;
    const status = res.statusCode;
    // The data plane sends the bytes: an allowed GET counts its object; the bytes are never seen here.
    this.admission?.done(this.method === 'GET' && status === 200);
    const seconds = (performance.now() - this.started) / 1000;
    const decision = decisionFor(outcome.reason, status);
    rt.metrics.authorizeDecisions.labels(this.providerName ?? '-', String(status), decision).inc();
    rt.audit.write(
      auditEvent({
        id: this.id, kind: 'authorize', sub: this.sub, jti: this.jti, unverified: this.unverified, org: this.org, provider: this.providerName, uri: this.uriText,
        decision, reason: outcome.reason, status, bytes: 0, aborted: !res.writableFinished, ms: Math.round(seconds * 1e4) / 10, client: this.client,
        tokenSource: this.tokenSource, detail: outcome.detail || undefined,
      }),
    );
  }
}

export function handleAuthorize(rt: Runtime, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const cfg = rt.config.authorizer;
  if (cfg === undefined) {
    refuseUnrouted(rt.logger, req, res, 'route_not_found', randomUUID(), { route: 'authorize' });
    return Promise.resolve();
  }
  const done = new AuthorizeExchange(rt, req, res, cfg).run();
  return done instanceof Promise ? done : Promise.resolve();
}
