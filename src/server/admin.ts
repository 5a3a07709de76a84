// The admin listener (loopback by default): /healthz, /readyz, /metrics for probes and
// scrapers; /admin/* actions for the labeling app and ops, behind the admin credential.
import { randomUUID, timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { subjectCutoff, tokenRevokedUntil } from '../auth/revocation.ts';
import { BodyError, readJson } from './body.ts';
import { REASONS, statusOf, type Reason } from '../reasons.ts';
import { logRefusal, type RefusalContext } from '../observe/refusal.ts';
import { redactUrl } from '../observe/logger.ts';
import { sendJson } from '../http/answer.ts';
import type { Runtime } from '../runtime.ts';

export interface AdminHooks {
  /** false while draining or before the first runtime is ready */
  accepting(): boolean;
  /** POST /admin/reload; absent when the process cannot reload */
  reload?(): Promise<{ ok: boolean; problems?: string[] }>;
  /** GET /metrics when this process is not the only one serving (a cluster primary aggregates its workers) */
  metrics?(): Promise<{ contentType: string; body: string }>;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

function adminAuthorized(rt: Runtime, req: IncomingMessage): boolean {
  const expected = rt.config.admin.token?.reveal();
  const auth = req.headers.authorization;
  if (!expected || !auth || !auth.toLowerCase().startsWith('bearer ')) return false;
  // Equal-length digests: the comparison time says nothing about the credential.
  return timingSafeEqual(digest(auth.slice(7).trim()), digest(expected));
}

/** Every admin route and the methods it takes: an unknown path is a 404, a known one asked with another method a 405 with Allow. */
const ROUTES: Readonly<Record<string, readonly string[]>> = {
  '/healthz': ['GET', 'HEAD'],
  '/readyz': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
  '/admin/revoke': ['POST'],
  '/admin/reload': ['POST'],
  '/admin/usage': ['GET'],
  '/admin/usage/reset': ['POST'],
  '/admin/ban': ['POST'],
};

/** Refuses with the reason code and, for ops reading it, a message saying exactly what to change. */
type AdminRefuse = (reason: Reason, message?: string, ctx?: Omit<RefusalContext, 'route'>, extra?: Record<string, string>) => void;

export async function handleAdmin(rt: Runtime, hooks: AdminHooks, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const id = randomUUID();
  const refuse: AdminRefuse = (reason, message, ctx = {}, extra) => {
    logRefusal(rt.logger, req, id, reason, { route: 'admin', ...ctx });
    for (const [k, v] of Object.entries(extra ?? {})) res.setHeader(k, v);
    sendJson(res, statusOf(reason), { error: reason, message: message ?? REASONS[reason], requestId: id });
  };
  const routes = Object.keys(ROUTES).filter((r) => r !== '/admin/reload' || hooks.reload);
  const methods = routes.includes(path) ? ROUTES[path] : undefined;
  // The path is echoed back to the asker only, redacted and bounded as a log line would be.
  const shown = redactUrl(path).slice(0, 256);
  if (methods === undefined) return refuse('route_not_found', `no admin route at ${shown}: the admin listener serves ${routes.map((r) => `${ROUTES[r]![0]} ${r}`).join(', ')}`);
  if (!methods.includes(req.method ?? '')) return refuse('method_not_allowed', `${shown} takes ${methods.join(' or ')}, not ${req.method}`, {}, { allow: methods.join(', ') });

  if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
  if (path === '/readyz') {
    const revocation = rt.revocation.ready();
    // Limits fail closed like revocation: not ready while their store cannot answer.
    const limits = rt.limiter?.ready();
    // Cloud identities: not ready while a provider's last attempt gave no usable credentials.
    const states = rt.registry.providers.map((p) => p.credentials?.()).filter((c) => c !== undefined);
    const credentials = states.length > 0 ? states.every((c) => c.up !== false) : undefined;
    const ready = revocation && limits !== false && credentials !== false && hooks.accepting();
    return sendJson(res, ready ? 200 : 503, { ready, revocation, ...(limits !== undefined ? { limits } : {}), ...(credentials !== undefined ? { credentials } : {}), accepting: hooks.accepting() });
  }
  if (path === '/metrics') {
    const { contentType, body } = hooks.metrics ? await hooks.metrics() : { contentType: rt.metrics.registry.contentType, body: await rt.metrics.registry.metrics() };
    res.writeHead(200, { 'content-type': contentType });
    res.end(body);
    return;
  }
  if (!adminAuthorized(rt, req)) return refuse('admin_unauthorized', rt.config.admin.token ? 'Authorization: Bearer <admin.token> is missing or wrong' : 'admin actions are off: admin.token is not set in the config', { level: 'warn' });
  if (path === '/admin/usage' || path === '/admin/usage/reset' || path === '/admin/ban') return limitsAction(rt, req, res, path, id, refuse);

  if (path === '/admin/revoke') {
    let body: unknown;
    try {
      body = (await readJson(req, 4096)) ?? {};
    } catch (err) {
      return refuse(err instanceof BodyError ? err.reason : 'bad_request', `/admin/revoke takes a JSON body {"jti": "…"} or {"sub": "…"}: ${err instanceof Error ? err.message : 'unreadable'}`);
    }
    const problem = revokeBodyProblem(body);
    if (problem !== undefined) return refuse('bad_request', `/admin/revoke: ${problem}`, { fields: { why: problem } });
    const { jti, sub, exp } = body as { jti?: string; sub?: string; exp?: number };
    const now = Math.floor(Date.now() / 1000);
    // The issuer's clock may run clockTolerance ahead of ours (auth/revocation.ts says why):
    // a jti is kept until no token accepted now can be accepted again, whatever `exp` says;
    // a subject's cut-off is that far ahead too.
    const times = rt.config.auth;
    const cutoff = subjectCutoff(now, times);
    try {
      if (typeof jti === 'string') await rt.revocation.revokeToken(jti, tokenRevokedUntil(now, exp, times));
      else await rt.revocation.revokeSubject(sub as string, cutoff);
    } catch (err) {
      return refuse('revocation_unavailable', undefined, { level: 'error', fields: { err } });
    }
    rt.logger.info({ requestId: id, revoked: typeof jti === 'string' ? { jti } : { sub, before: cutoff } }, 'revoked');
    return sendJson(res, 200, typeof jti === 'string' ? { revoked: { jti } } : { revoked: { sub, issuedAtOrBefore: cutoff } });
  }
  const result = await hooks.reload!();
  return sendJson(res, result.ok ? 200 : 400, result);
}

/** What is wrong with a revoke body, in words an operator can act on; undefined: nothing. */
function revokeBodyProblem(body: unknown): string | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return 'the body must be a JSON object: {"jti": "…"} or {"sub": "…"}';
  const { jti, sub, exp } = body as Record<string, unknown>;
  if (jti === undefined && sub === undefined) return 'give jti (one token) or sub (every token of a user issued until now)';
  if (jti !== undefined && sub !== undefined) return 'give jti or sub, not both: revoke one token, or every token of a user';
  const [name, value] = jti !== undefined ? ['jti', jti] : ['sub', sub];
  if (typeof value !== 'string' || value.length === 0 || value.length > 512) return `${name} must be a string of 1 to 512 characters`;
  if (exp !== undefined && (typeof exp !== 'number' || !Number.isFinite(exp))) return 'exp must be the token\'s exp claim, seconds since 1970';
  return undefined;
}

/** The longest ban: a typo must not lock a subject out for ever (a revocation is kept that long). */
const MAX_BAN_SECONDS = 366 * 86_400;
const validSub = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 512;

/**
 * GET /admin/usage?sub=… (a subject's counters now), POST /admin/usage/reset {sub} (forget
 * them), POST /admin/ban {sub, seconds} (refuse every token of sub issued until the ban ends:
 * a subject revocation whose cut-off lies in the future).
 */
async function limitsAction(rt: Runtime, req: IncomingMessage, res: ServerResponse, path: string, id: string, refuse: AdminRefuse): Promise<void> {
  if (path === '/admin/usage') {
    const sub = new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get('sub');
    if (!validSub(sub)) return refuse('bad_request', `${path}: give ?sub=, 1 to 512 characters`);
    if (!rt.limiter) return refuse('bad_request', `${path}: no limits are configured (the limits section)`);
    try {
      return sendJson(res, 200, { sub, counters: await rt.limiter.usage(sub) });
    } catch (err) {
      return refuse('limits_unavailable', undefined, { level: 'error', fields: { err } });
    }
  }
  let body: { sub?: unknown; seconds?: unknown };
  try {
    body = ((await readJson(req, 4096)) ?? {}) as typeof body;
  } catch (err) {
    return refuse(err instanceof BodyError ? err.reason : 'bad_request', `${path} takes a JSON body: ${err instanceof Error ? err.message : 'unreadable'}`);
  }
  const { sub, seconds } = body;
  if (!validSub(sub)) return refuse('bad_request', `${path}: give sub, a string of 1 to 512 characters`);
  if (path === '/admin/usage/reset') {
    if (!rt.limiter) return refuse('bad_request', `${path}: no limits are configured (the limits section)`);
    let counters: number;
    try {
      counters = await rt.limiter.reset(sub);
    } catch (err) {
      return refuse('limits_unavailable', undefined, { level: 'error', fields: { err } });
    }
    rt.logger.info({ requestId: id, reset: { sub, counters } }, 'usage reset');
    return sendJson(res, 200, { reset: { sub, counters } });
  }
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 1 || seconds > MAX_BAN_SECONDS) {
    return refuse('bad_request', `${path}: give seconds, a whole number from 1 to ${MAX_BAN_SECONDS}`);
  }
  // A revocation with an end: every token of sub issued up to the ban's end (plus the clock
  // tolerance, as for any subject revocation) is refused; a token minted after it passes.
  const now = Math.floor(Date.now() / 1000);
  const until = now + seconds;
  const cutoff = subjectCutoff(until, rt.config.auth);
  try {
    await rt.revocation.revokeSubject(sub, cutoff);
  } catch (err) {
    return refuse('revocation_unavailable', undefined, { level: 'error', fields: { err } });
  }
  rt.logger.info({ requestId: id, banned: { sub, until, issuedAtOrBefore: cutoff } }, 'banned');
  return sendJson(res, 200, { banned: { sub, until: new Date(until * 1000).toISOString(), issuedAtOrBefore: cutoff } });
}
