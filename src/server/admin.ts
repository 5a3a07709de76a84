// The admin listener (loopback by default): /healthz, /readyz, /metrics for probes and
// scrapers; /admin/* actions for the labeling app and ops, behind the admin credential.
import { randomUUID, timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { subjectCutoff, tokenRevokedUntil } from '../auth/revocation.ts';
import { BodyError, readJson } from './body.ts';
import type { Reason } from '../reasons.ts';
import { refuse as refuseWith, type RefusalContext } from '../observe/refusal.ts';
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

export async function handleAdmin(rt: Runtime, hooks: AdminHooks, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const id = randomUUID();
  const refuse = (reason: Reason, ctx: Omit<RefusalContext, 'route'> = {}, extra?: Record<string, string>): void =>
    refuseWith(rt.logger, req, res, reason, id, { route: 'admin', ...ctx }, extra);
  if (req.method === 'GET' || req.method === 'HEAD') {
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
    if (path === '/metrics' && hooks.metrics) {
      const { contentType, body } = await hooks.metrics();
      res.writeHead(200, { 'content-type': contentType });
      res.end(body);
      return;
    }
    if (path === '/metrics') {
      const body = await rt.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': rt.metrics.registry.contentType });
      res.end(body);
      return;
    }
  }
  if (!path?.startsWith('/admin/')) return refuse('route_not_found');
  const readable = path === '/admin/usage';
  if (readable ? req.method !== 'GET' : req.method !== 'POST') return refuse('method_not_allowed', {}, { allow: readable ? 'GET' : 'POST' });
  if (!adminAuthorized(rt, req)) return refuse('admin_unauthorized', { level: 'warn' });
  if (path === '/admin/usage' || path === '/admin/usage/reset' || path === '/admin/ban') return limitsAction(rt, req, res, path, id, refuse);

  if (path === '/admin/revoke') {
    let body: { jti?: unknown; sub?: unknown; exp?: unknown };
    try {
      body = ((await readJson(req, 4096)) ?? {}) as typeof body;
    } catch (err) {
      return refuse(err instanceof BodyError ? err.reason : 'bad_request');
    }
    const now = Math.floor(Date.now() / 1000);
    const { jti, sub, exp } = body;
    const valid = (v: unknown) => typeof v === 'string' && v.length > 0 && v.length <= 512;
    if ((jti === undefined) === (sub === undefined) || (jti !== undefined && !valid(jti)) || (sub !== undefined && !valid(sub))) {
      return refuse('bad_request', { fields: { why: 'give exactly one of jti and sub, each a string of 1 to 512 characters' } });
    }
    // The issuer's clock may run clockTolerance ahead of ours (auth/revocation.ts says why):
    // a jti is kept until no token accepted now can be accepted again, whatever `exp` says;
    // a subject's cut-off is that far ahead too.
    const times = rt.config.auth;
    const cutoff = subjectCutoff(now, times);
    try {
      if (typeof jti === 'string') await rt.revocation.revokeToken(jti, tokenRevokedUntil(now, exp, times));
      else await rt.revocation.revokeSubject(sub as string, cutoff);
    } catch (err) {
      return refuse('revocation_unavailable', { level: 'error', fields: { err } });
    }
    rt.logger.info({ requestId: id, revoked: typeof jti === 'string' ? { jti } : { sub, before: cutoff } }, 'revoked');
    return sendJson(res, 200, typeof jti === 'string' ? { revoked: { jti } } : { revoked: { sub, issuedAtOrBefore: cutoff } });
  }
  if (path === '/admin/reload' && hooks.reload) {
    const result = await hooks.reload();
    return sendJson(res, result.ok ? 200 : 400, result);
  }
  return refuse('route_not_found');
}

/** The longest ban: a typo must not lock a subject out for ever (a revocation is kept that long). */
const MAX_BAN_SECONDS = 366 * 86_400;
const validSub = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 512;

/**
 * GET /admin/usage?sub=… (a subject's counters now), POST /admin/usage/reset {sub} (forget
 * them), POST /admin/ban {sub, seconds} (refuse every token of sub issued until the ban ends:
 * a subject revocation whose cut-off lies in the future).
 */
async function limitsAction(rt: Runtime, req: IncomingMessage, res: ServerResponse, path: string, id: string, refuse: (reason: Reason, ctx?: Omit<RefusalContext, 'route'>) => void): Promise<void> {
  if (path === '/admin/usage') {
    const sub = new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get('sub');
    if (!validSub(sub)) return refuse('bad_request', { fields: { why: 'give ?sub=, 1 to 512 characters' } });
    if (!rt.limiter) return refuse('bad_request', { fields: { why: 'no limits are configured' } });
    try {
      return sendJson(res, 200, { sub, counters: await rt.limiter.usage(sub) });
    } catch (err) {
      return refuse('limits_unavailable', { level: 'error', fields: { err } });
    }
  }
  let body: { sub?: unknown; seconds?: unknown };
  try {
    body = ((await readJson(req, 4096)) ?? {}) as typeof body;
  } catch (err) {
    return refuse(err instanceof BodyError ? err.reason : 'bad_request');
  }
  const { sub, seconds } = body;
  if (!validSub(sub)) return refuse('bad_request', { fields: { why: 'give sub, a string of 1 to 512 characters' } });
  if (path === '/admin/usage/reset') {
    if (!rt.limiter) return refuse('bad_request', { fields: { why: 'no limits are configured' } });
    let counters: number;
    try {
      counters = await rt.limiter.reset(sub);
    } catch (err) {
      return refuse('limits_unavailable', { level: 'error', fields: { err } });
    }
    rt.logger.info({ requestId: id, reset: { sub, counters } }, 'usage reset');
    return sendJson(res, 200, { reset: { sub, counters } });
  }
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 1 || seconds > MAX_BAN_SECONDS) {
    return refuse('bad_request', { fields: { why: `give seconds, a whole number from 1 to ${MAX_BAN_SECONDS}` } });
  }
  // A revocation with an end: every token of sub issued up to the ban's end (plus the clock
  // tolerance, as for any subject revocation) is refused; a token minted after it passes.
  const now = Math.floor(Date.now() / 1000);
  const until = now + seconds;
  const cutoff = subjectCutoff(until, rt.config.auth);
  try {
    await rt.revocation.revokeSubject(sub, cutoff);
  } catch (err) {
    return refuse('revocation_unavailable', { level: 'error', fields: { err } });
  }
  rt.logger.info({ requestId: id, banned: { sub, until, issuedAtOrBefore: cutoff } }, 'banned');
  return sendJson(res, 200, { banned: { sub, until: new Date(until * 1000).toISOString(), issuedAtOrBefore: cutoff } });
}
