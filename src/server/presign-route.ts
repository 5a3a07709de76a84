// POST /v1/presign {"uris": […]}: for the labeling app's backend. Each URI gets its own
// answer, {url, expiresAt} or {error}, after the same checks as a data request.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { authorize } from '../auth/scope.js';
import { parseDataUri, UriError } from '../providers/uri.js';
import { CloudRefusal } from '../providers/cloud/errors.js';
import type { Reason } from '../reasons.js';
import { BodyError, readJson } from './body.js';
import { sendError, sendJson } from './respond.js';
import type { Runtime } from './runtime.js';
import { authenticate } from './authenticate.js';

type Answer = { uri: string; url: string; expiresAt: string } | { uri: string; error: Reason };

export async function handlePresign(rt: Runtime, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const id = randomUUID();
  res.setHeader('x-request-id', id);
  if (req.method !== 'POST') return sendError(res, 405, 'method_not_allowed', id, { allow: 'POST' });
  const auth = await authenticate(rt, req.headers, null);
  if (!auth.ok) return sendError(res, auth.status, auth.reason, id);

  const { maxBatch } = rt.config.presign;
  let uris: string[];
  let ttlSeconds: number | undefined;
  try {
    const body = await readJson(req, maxBatch * (rt.config.server.maxUriLength + 16) + 1024);
    const list = (body as { uris?: unknown } | null)?.uris;
    if (!Array.isArray(list) || list.length === 0 || list.length > maxBatch || list.some((u) => typeof u !== 'string')) {
      return sendError(res, 400, 'bad_request', id);
    }
    uris = list as string[];
    // Optional lifetime for every URL of the batch; each provider caps it at its ttl.max.
    const ttl = (body as { ttl?: unknown }).ttl;
    if (ttl !== undefined && (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1)) return sendError(res, 400, 'bad_request', id);
    ttlSeconds = ttl;
  } catch (err) {
    return sendError(res, err instanceof BodyError ? err.status : 400, 'bad_request', id);
  }

  const answers = await Promise.all(
    uris.map(async (raw): Promise<Answer> => {
      let reason: Reason;
      let provider: string | undefined;
      // What the audit event names: the canonical URI once it parsed, else the raw one (cut
      // short). Either way the audit log redacts credentials in it (observe/audit.ts).
      let audited = raw.slice(0, 256);
      try {
        const uri = parseDataUri(raw, rt.config.server.maxUriLength);
        audited = uri.canonical;
        // Refuses a URI that names a folder (uri_folder), before any provider sees it.
        const resolved = rt.registry.resolve(uri);
        if (!resolved) reason = 'no_provider';
        else {
          provider = resolved.provider.name;
          reason = authorize(auth.claims, uri.canonical, resolved.provider) ?? 'ok';
          if (reason === 'ok' && !resolved.provider.presign) reason = 'no_provider';
          if (reason === 'ok') {
            const signed = await resolved.provider.presign!(uri, resolved.rest, ttlSeconds !== undefined ? { ttlSeconds } : {});
            rt.audit.write({ id, sub: auth.claims.sub, org: auth.claims.org, provider, uri: uri.canonical, decision: 'allow', reason, status: 200, bytes: 0, aborted: false, ms: 0, client: req.socket.remoteAddress, tokenSource: auth.source });
            return { uri: raw, ...signed };
          }
        }
      } catch (err) {
        reason = err instanceof UriError || err instanceof CloudRefusal ? err.reason : 'internal';
        if (reason === 'internal') rt.logger.error({ err, requestId: id }, 'presign failed');
      }
      rt.audit.write({ id, sub: auth.claims.sub, org: auth.claims.org, provider, uri: audited, decision: 'deny', reason, status: 200, bytes: 0, aborted: false, ms: 0, client: req.socket.remoteAddress, tokenSource: auth.source });
      return { uri: raw, error: reason };
    }),
  );
  sendJson(res, 200, { results: answers });
}
