// Token → verified, unrevoked session. Shared by the data, presign and session routes.
import type { IncomingHttpHeaders } from 'node:http';
import type { SessionClaims } from '../auth/claims.js';
import { extractToken, type TokenSource } from '../auth/extract.js';
import { introspectorFor } from '../auth/introspect.js';
import { RevocationUnavailable } from '../auth/revocation.js';
import { TokenError } from '../auth/verify.js';
import type { Reason } from '../reasons.js';
import type { Runtime } from './runtime.js';

export type Authenticated =
  | { ok: true; claims: SessionClaims; source: TokenSource; token: string }
  | { ok: false; status: number; reason: Reason; source: TokenSource | undefined };

export async function authenticate(rt: Runtime, headers: IncomingHttpHeaders, queryToken: string | null): Promise<Authenticated> {
  const found = extractToken(headers, rt.config.auth.queryToken ? queryToken : null, rt.config.auth.cookie.name);
  if (!found) return fail(rt, 401, 'token_missing', undefined);
  let claims: SessionClaims;
  try {
    claims = await rt.verifier.verify(found.token);
  } catch (err) {
    return fail(rt, 401, err instanceof TokenError ? err.reason : 'token_invalid', found.source);
  }
  try {
    if (await rt.revocation.isRevoked(claims)) return fail(rt, 401, 'token_revoked', found.source);
  } catch (err) {
    if (!(err instanceof RevocationUnavailable)) rt.logger.error({ err }, 'revocation check failed');
    return fail(rt, 503, 'revocation_unavailable', found.source);
  }
  return { ok: true, claims, source: found.source, token: found.token };
}

/** A data request with no Keyhole token, authorized by asking the app (auth.introspect). */
export interface Introspected {
  ok: true;
  claims: SessionClaims;
  source: 'introspect';
  /** the only providers this session may read; no per-URI scope */
  providers: ReadonlySet<string>;
}

/** The data route's authentication: a Keyhole token, else (when configured) the app's word. */
export async function authenticateData(rt: Runtime, headers: IncomingHttpHeaders, queryToken: string | null): Promise<Authenticated | Introspected> {
  const auth = await authenticate(rt, headers, queryToken);
  const introspect = rt.config.auth.introspect;
  if (auth.ok || auth.reason !== 'token_missing' || !introspect) return auth;
  const answer = await introspectorFor(introspect).check(headers);
  if (!answer.ok) return fail(rt, answer.status, answer.reason, undefined);
  const exp = Math.floor(answer.expiresAt / 1000);
  const claims: SessionClaims = { sub: answer.sub, exp, iat: undefined, jti: undefined, org: undefined, project: undefined, scope: [], uri: undefined };
  return { ok: true, claims, source: 'introspect', providers: answer.providers };
}

function fail(rt: Runtime, status: number, reason: Reason, source: TokenSource | undefined): Authenticated {
  rt.metrics.tokenFailures.labels(reason).inc();
  return { ok: false, status, reason, source };
}
