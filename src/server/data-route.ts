// GET|HEAD /v1/data?uri=…: authenticate → parse the URI → resolve its provider →
// authorize → let the provider answer → one audit event when the response is over.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { authorize } from '../auth/scope.js';
import { authorizeIntrospected } from '../auth/introspect.js';
import { decisionFor } from '../observe/audit.js';
import { redactUrl } from '../observe/logger.js';
import type { DataRequest, Outcome } from '../providers/types.js';
import { parseDataUri, UriError, type DataUri } from '../providers/uri.js';
import type { Reason } from '../reasons.js';
import { sendError } from './respond.js';
import type { Runtime } from './runtime.js';
import { authenticateData } from './authenticate.js';

export const DATA_METHODS = 'GET, HEAD, OPTIONS';

/** `?a=1&b=2` → the values of `uri` and `token`; a repeated one is ambiguous and refused. */
export function dataQuery(url: string): { uri: string | null; token: string | null; ambiguous: boolean } {
  const q = url.indexOf('?');
  if (q === -1) return { uri: null, token: null, ambiguous: false };
  const params = new URLSearchParams(url.slice(q + 1));
  const uris = params.getAll('uri');
  const tokens = params.getAll('token');
  return { uri: uris[0] ?? null, token: tokens[0] ?? null, ambiguous: uris.length > 1 || tokens.length > 1 };
}

export async function handleData(rt: Runtime, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = performance.now();
  const id = randomUUID();
  res.setHeader('x-request-id', id);
  rt.cors.decorate(req, res);

  const outcome: Outcome = { reason: 'ok', bytes: 0 };
  let sub: string | undefined;
  let org: string | undefined;
  let providerName: string | undefined;
  let uriText: string | undefined;
  let tokenSource: string | undefined;

  res.once('close', () => {
    const aborted = !res.writableFinished;
    const status = res.statusCode;
    const provider = providerName ?? '-';
    const seconds = (performance.now() - started) / 1000;
    const decision = decisionFor(outcome.reason, status);
    rt.metrics.recordRequest(provider, status, decision, seconds, outcome.bytes, aborted);
    if (outcome.reason === 'upstream_error' || outcome.reason === 'upstream_timeout' || outcome.reason === 'upstream_status') {
      rt.metrics.upstreamErrors.labels(provider, outcome.reason).inc();
    }
    rt.audit.write({
      id,
      sub,
      org,
      provider: providerName,
      uri: uriText,
      decision,
      reason: outcome.reason,
      status,
      bytes: outcome.bytes,
      aborted,
      ms: Math.round(seconds * 1e4) / 10,
      client: req.socket.remoteAddress,
      tokenSource,
      ...(outcome.detail ? { detail: outcome.detail } : {}),
    });
  });

  const refuse = (status: number, reason: Reason, extra?: Record<string, string>) => {
    outcome.reason = reason;
    sendError(res, status, reason, id, extra);
  };

  const method = req.method;
  if (method === 'OPTIONS') {
    if (!rt.cors.preflight(req, res, DATA_METHODS)) refuse(403, 'cors_origin');
    return;
  }
  if (method !== 'GET' && method !== 'HEAD') return refuse(405, 'method_not_allowed', { allow: DATA_METHODS });

  const query = dataQuery(req.url ?? '');
  if (query.ambiguous) return refuse(400, 'bad_request');

  const auth = await authenticateData(rt, req.headers, query.token);
  tokenSource = auth.source;
  if (!auth.ok) {
    return refuse(auth.status, auth.reason, auth.status === 401 ? { 'www-authenticate': 'Bearer realm="keyhole"' } : undefined);
  }
  sub = auth.claims.sub;
  org = auth.claims.org;

  if (query.uri === null) return refuse(400, 'uri_missing');
  // Until it parses, the raw URI may carry anything, e.g. a presigned URL's signature.
  uriText = redactUrl(query.uri.slice(0, rt.config.server.maxUriLength));
  let uri: DataUri;
  try {
    uri = parseDataUri(query.uri, rt.config.server.maxUriLength);
  } catch (err) {
    return refuse(400, err instanceof UriError ? err.reason : 'uri_invalid');
  }
  uriText = uri.canonical;

  const resolved = rt.registry.resolve(uri);
  if (!resolved) return refuse(403, 'no_provider');
  providerName = resolved.provider.name;

  const denied = auth.source === 'introspect'
    ? authorizeIntrospected(auth.providers, resolved.provider)
    : authorize(auth.claims, uri.canonical, resolved.provider);
  if (denied) return refuse(403, denied);

  const dataReq: DataRequest = { id, method, uri, rest: resolved.rest, headers: req.headers, outcome };
  try {
    await resolved.provider.serve(dataReq, res);
  } catch (err) {
    rt.logger.error({ err, requestId: id, provider: providerName }, 'provider failed');
    outcome.reason = 'internal';
    sendError(res, 500, 'internal', id);
  }
}
