// Token → verified, unrevoked session. Shared by the data, presign and session routes.
// A token seen before (the verified-token cache) against the in-memory revocation store is
// answered without waiting for anything: no promise on the data path's common case.
import type { IncomingHttpHeaders } from 'node:http';
import type { SessionClaims } from '../auth/claims.js';
import { extractToken, type Extracted, type TokenSource } from '../auth/extract.js';
import { introspectorFor } from '../auth/introspect.js';
import { RevocationUnavailable } from '../auth/revocation.js';
import { TokenError } from '../auth/verify.js';
import type { Reason } from '../reasons.js';
import type { Runtime } from './runtime.js';

export type Authenticated =
  | { ok: true; claims: SessionClaims; source: TokenSource; token: string }
  | { ok: false; status: number; reason: Reason; source: TokenSource | undefined };

export function authenticate(rt: Runtime, headers: IncomingHttpHeaders, queryToken: string | null): Authenticated | Promise<Authenticated> {
  const found = extractToken(headers, rt.config.auth.queryToken ? queryToken : null, rt.config.auth.cookie.name);
  if (!found) return fail(rt, 401, 'token_missing', undefined);
  const cached = rt.verifier.cached(found.token);
  if (cached !== undefined) return unrevoked(rt, cached, found);
  return rt.verifier.verify(found.token).then(
    (claims) => unrevoked(rt, claims, found),
    (err: unknown) => fail(rt, 401, err instanceof TokenError ? err.reason : 'token_invalid', found.source),
  );
}

function unrevoked(rt: Runtime, claims: SessionClaims, found: Extracted): Authenticated | Promise<Authenticated> {
  const ok = (revoked: boolean): Authenticated => (revoked ? fail(rt, 401, 'token_revoked', found.source) : { ok: true, claims, source: found.source, token: found.token });
  const unavailable = (err: unknown): Authenticated => {
    if (!(err instanceof RevocationUnavailable)) rt.logger.error({ err }, 'revocation check failed');
    return fail(rt, 503, 'revocation_unavailable', found.source);
  };
  let revoked: boolean | Promise<boolean>;
  try {
    revoked = rt.revocation.isRevoked(claims);
  } catch (err) {
    return unavailable(err);
  }
  return typeof revoked === 'boolean' ? ok(revoked) : revoked.then(ok, unavailable);
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
export function authenticateData(rt: Runtime, headers: IncomingHttpHeaders, queryToken: string | null): Authenticated | Introspected | Promise<Authenticated | Introspected> {
  const auth = authenticate(rt, headers, queryToken);
  const introspect = rt.config.auth.introspect;
  if (!introspect) return auth;
  const decide = async (a: Authenticated): Promise<Authenticated | Introspected> => {
    if (a.ok || a.reason !== 'token_missing') return a;
    const answer = await introspectorFor(introspect).check(headers);
    if (!answer.ok) return fail(rt, answer.status, answer.reason, undefined);
    const exp = Math.floor(answer.expiresAt / 1000);
    const claims: SessionClaims = { sub: answer.sub, exp, iat: undefined, jti: undefined, org: undefined, project: undefined, scope: [], uri: undefined };
    return { ok: true, claims, source: 'introspect', providers: answer.providers };
  };
  if (auth instanceof Promise) return auth.then(decide);
  return auth.ok || auth.reason !== 'token_missing' ? auth : decide(auth);
}

function fail(rt: Runtime, status: number, reason: Reason, source: TokenSource | undefined): Authenticated {
  rt.metrics.tokenFailures.labels(reason).inc();
  return { ok: false, status, reason, source };
}
