// POST /v1/presign {"uris": […]}: for the labeling app's backend. Each URI gets its own
// answer, {url, expiresAt} or {error}, after the same checks as a data request.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { authorize } from '../auth/scope.ts';
import { parseDataUri, UriError } from '../uri.ts';
import { CloudRefusal } from '../providers/cloud/errors.ts';
import { auditEvent } from '../observe/audit.ts';
import { statusOf, type Reason } from '../reasons.ts';
import { BodyError, readJson } from './body.ts';
import { sendError, sendJson } from '../http/answer.ts';
import type { Runtime } from '../runtime.ts';
import { authenticate, claimedBy } from './authenticate.ts';

type Answer = { uri: string; url: string; expiresAt: string } | { uri: string; error: Reason };

/** Who an event names: a verified token's claims, or what a refused one claims (marked unverified). */
interface Asker {
  sub: string | undefined;
  jti: string | undefined;
  unverified: true | undefined;
  org: string | undefined;
  tokenSource: string | undefined;
}

const NOBODY: Asker = { sub: undefined, jti: undefined, unverified: undefined, org: undefined, tokenSource: undefined };

export async function handlePresign(rt: Runtime, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const id = randomUUID();
  const started = performance.now();
  // Read now: a reset connection has no peer address any more.
  const client = req.socket.remoteAddress;
  /** One event per URI of the batch (`kind: presign`): an issued URL is not a download, so no bytes. */
  const audit = (who: Asker, decision: 'allow' | 'deny' | 'error', reason: Reason, status: number, provider?: string, uri?: string, expiresAt?: string): void =>
    rt.audit.write(
      auditEvent({
        id, kind: 'presign', sub: who.sub, jti: who.jti, unverified: who.unverified, org: who.org, provider, uri, decision, reason, status,
        ms: Math.round((performance.now() - started) * 10) / 10, client, tokenSource: who.tokenSource, expiresAt,
      }),
    );
  /** The whole batch refused: its audit event is the log line that the answer's request id finds. */
  const refuse = (who: Asker, reason: Reason, extra?: Record<string, string>): void => {
    audit(who, 'deny', reason, statusOf(reason));
    sendError(res, reason, id, extra);
  };
  res.setHeader('x-request-id', id);
  if (req.method !== 'POST') return refuse(NOBODY, 'method_not_allowed', { allow: 'POST' });
  const auth = await authenticate(rt, req.headers, null);
  if (!auth.ok) {
    return refuse({ ...NOBODY, ...claimedBy(auth), tokenSource: auth.source }, auth.reason);
  }
  const who: Asker = { sub: auth.claims.sub, jti: auth.claims.jti, unverified: undefined, org: auth.claims.org, tokenSource: auth.source };

  const { maxBatch } = rt.config.presign;
  let uris: string[];
  let ttlSeconds: number | undefined;
  try {
    const body = await readJson(req, maxBatch * (rt.config.server.maxUriLength + 16) + 1024);
    const list = (body as { uris?: unknown } | null)?.uris;
    if (!Array.isArray(list) || list.length === 0 || list.length > maxBatch || list.some((u) => typeof u !== 'string')) {
      return refuse(who, 'bad_request');
    }
    uris = list as string[];
    // Optional lifetime for every URL of the batch; each provider caps it at its ttl.max.
    const ttl = (body as { ttl?: unknown }).ttl;
    if (ttl !== undefined && (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1)) return refuse(who, 'bad_request');
    ttlSeconds = ttl;
  } catch (err) {
    return refuse(who, err instanceof BodyError ? err.reason : 'bad_request');
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
          reason = authorize(auth, uri.canonical, resolved.provider) ?? 'ok';
          if (reason === 'ok' && !resolved.provider.presign) reason = 'no_provider';
          if (reason === 'ok') {
            const signed = await resolved.provider.presign!(uri, resolved.rest, ttlSeconds !== undefined ? { ttlSeconds } : {});
            audit(who, 'allow', reason, 200, provider, uri.canonical, signed.expiresAt);
            return { uri: raw, ...signed };
          }
        }
      } catch (err) {
        reason = err instanceof UriError || err instanceof CloudRefusal ? err.reason : 'internal';
        if (reason === 'internal') rt.logger.error({ err, requestId: id }, 'presign failed');
      }
      audit(who, reason === 'internal' ? 'error' : 'deny', reason, 200, provider, audited);
      return { uri: raw, error: reason };
    }),
  );
  sendJson(res, 200, { results: answers });
}
