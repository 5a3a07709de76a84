// Token → verified, unrevoked session. Shared by the data, presign and session routes.
// A token seen before (the verified-token cache) against the in-memory revocation store is
// answered without waiting for anything: no promise on the data path's common case.
import type { IncomingHttpHeaders } from 'node:http';
import { decodeJwt } from 'jose';
import type { SessionClaims } from '../auth/claims.ts';
import { extractToken, type Extracted, type TokenSource } from '../auth/extract.ts';
import { MAX_SESSION_VALUES, sessionCookie, type Introspector, type LogoutConfig } from '../auth/introspect.ts';
import { RevocationUnavailable } from '../auth/revocation.ts';
import { TokenError } from '../auth/verify.ts';
import type { Reason } from '../reasons.ts';
import type { Runtime } from '../runtime.ts';

/**
 * What a refused request's token says about itself, read without trusting it (the signature
 * may not verify): for auditors, marked unverified. Never the token itself.
 */
export interface Unverified {
  sub?: string;
  jti?: string;
}

export type Authenticated =
  | { ok: true; claims: SessionClaims; source: TokenSource; token: string }
  | { ok: false; reason: Reason; source: TokenSource | undefined; unverified?: Unverified };

/** Longest claim value copied into `unverified`: the rest is the token holder's to pad. */
const MAX_CLAIM = 256;

/** sub and jti as the token states them, when it decodes at all; nothing else. */
export function unverifiedClaims(token: string): Unverified | undefined {
  let payload: Record<string, unknown>;
  try {
    payload = decodeJwt(token);
  } catch {
    return undefined;
  }
  const read = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v.slice(0, MAX_CLAIM) : undefined);
  const sub = read(payload.sub);
  const jti = read(payload.jti);
  if (sub === undefined && jti === undefined) return undefined;
  return { ...(sub !== undefined ? { sub } : {}), ...(jti !== undefined ? { jti } : {}) };
}

export function authenticate(rt: Runtime, headers: IncomingHttpHeaders, queryToken: string | null): Authenticated | Promise<Authenticated> {
  const found = extractToken(headers, rt.config.auth.queryToken ? queryToken : null, rt.config.auth.cookie.name);
  if (!found) return fail(rt, 'token_missing', undefined);
  return authenticateFound(rt, found);
}

function authenticateFound(rt: Runtime, found: Extracted): Authenticated | Promise<Authenticated> {
  const cached = rt.verifier.cached(found.token);
  if (cached !== undefined) return unrevoked(rt, cached, found);
  return verifyFound(rt, found);
}

/** A token not in the verified-token cache: its signature and claims checked. */
function verifyFound(rt: Runtime, found: Extracted): Promise<Authenticated> {
  return rt.verifier.verify(found.token).then(
    (claims) => unrevoked(rt, claims, found),
    (err: unknown) => fail(rt, err instanceof TokenError ? err.reason : 'token_invalid', found.source, unverifiedClaims(found.token)),
  );
}

function unrevoked(rt: Runtime, claims: SessionClaims, found: Extracted): Authenticated | Promise<Authenticated> {
  // Verified: a refusal names whose token it was.
  const who = { sub: claims.sub, ...(claims.jti !== undefined ? { jti: claims.jti } : {}) };
  const decide = (revoked: Lookup): Authenticated =>
    revoked === 'unavailable'
      ? fail(rt, 'revocation_unavailable', found.source, who)
      : revoked
        ? fail(rt, 'token_revoked', found.source, who)
        : { ok: true, claims, source: found.source, token: found.token };
  const revoked = storeSays(rt, () => rt.revocation.isRevoked(claims));
  return revoked instanceof Promise ? revoked.then(decide) : decide(revoked);
}

/** A revocation store's answer; 'unavailable' when it cannot tell (the caller fails closed). */
type Lookup = boolean | 'unavailable';

function storeSays(rt: Runtime, lookup: () => boolean | Promise<boolean>): Lookup | Promise<Lookup> {
  const unavailable = (err: unknown): 'unavailable' => {
    if (!(err instanceof RevocationUnavailable)) rt.logger.error({ err }, 'revocation check failed');
    return 'unavailable';
  };
  try {
    const revoked = lookup();
    return typeof revoked === 'boolean' ? revoked : revoked.catch(unavailable);
  } catch (err) {
    return unavailable(err);
  }
}

/** A data request with no Keyhole token, authorized by asking the app (auth.introspect). */
export interface Introspected {
  ok: true;
  claims: SessionClaims;
  source: 'introspect';
  /** the only providers this session may read; no per-URI scope */
  providers: ReadonlySet<string>;
}

/**
 * The data route's authentication: a Keyhole token, else (when configured and enabled) the
 * app's word. A Bearer JWT from another issuer (the app's own access tokens) is not a Keyhole
 * token at all: it goes to the app too. A token that claims Keyhole's issuer and fails
 * verification is refused as it is; nothing from the cookie or ?token= ever falls back.
 */
export function authenticateData(rt: Runtime, headers: IncomingHttpHeaders, queryToken: string | null): Authenticated | Introspected | Promise<Authenticated | Introspected> {
  const introspector = rt.introspector;
  const found = extractToken(headers, rt.config.auth.queryToken ? queryToken : null, rt.config.auth.cookie.name);
  if (!found) return introspector ? introspected(rt, introspector, headers) : fail(rt, 'token_missing', undefined);
  // A cached token verified as Keyhole's: only an uncached one is decoded to look at its issuer.
  const cached = rt.verifier.cached(found.token);
  if (cached !== undefined) return unrevoked(rt, cached, found);
  if (introspector && found.source === 'header' && foreignIssuer(found.token, rt.config.auth.issuer)) return introspected(rt, introspector, headers);
  return verifyFound(rt, found);
}

/** A JWT whose (unverified) iss is none of Keyhole's; not a JWT at all is not foreign: it is broken. */
function foreignIssuer(token: string, issuer: string | string[]): boolean {
  let iss: unknown;
  try {
    iss = decodeJwt(token).iss;
  } catch {
    return false;
  }
  return typeof issuer === 'string' ? iss !== issuer : !issuer.includes(iss as string);
}

async function introspected(rt: Runtime, introspector: Introspector, headers: IncomingHttpHeaders): Promise<Authenticated | Introspected> {
  // A session cookie logged out through Keyhole's app front stays out, whatever the app
  // still says about it (a signed-cookie session outlives the app's own logout).
  const logout: LogoutConfig | undefined = rt.config.auth.introspect?.logout;
  if (logout) {
    const session = sessionCookie(headers, logout.sessionCookie);
    if (session.unreadable || session.values > MAX_SESSION_VALUES) return fail(rt, 'introspect_denied', undefined);
    for (const hash of session.hashes) {
      const out = await storeSays(rt, () => rt.revocation.isSessionRevoked(hash));
      if (out === 'unavailable') return fail(rt, 'revocation_unavailable', undefined);
      if (out) return fail(rt, 'session_logged_out', undefined);
    }
  }
  const answer = await introspector.check(headers);
  if (!answer.ok) return fail(rt, answer.reason, undefined);
  const exp = Math.floor(answer.expiresAt / 1000);
  // No iat: like a token without one, a subject revoked within the revocation horizon stays
  // refused here too, however it comes (a token revoked, DELETE /v1/session, the app cookie).
  const claims: SessionClaims = { sub: answer.sub, exp, iat: undefined, jti: undefined, org: undefined, project: undefined, scope: [], uri: undefined };
  const revoked = await storeSays(rt, () => rt.revocation.isRevoked(claims));
  if (revoked === 'unavailable') return fail(rt, 'revocation_unavailable', undefined, { sub: answer.sub });
  if (revoked) return fail(rt, 'token_revoked', undefined, { sub: answer.sub });
  return { ok: true, claims, source: 'introspect', providers: answer.providers };
}

/**
 * Who a refused token claims to be (sub, jti), marked `unverified`; all undefined when no
 * token was read or nothing could be read from it.
 */
export function claimedBy(auth: Extract<Authenticated, { ok: false }>): { sub: string | undefined; jti: string | undefined; unverified: true | undefined } {
  const claimed = auth.unverified;
  if (claimed?.sub === undefined && claimed?.jti === undefined) return { sub: undefined, jti: undefined, unverified: undefined };
  return { sub: claimed.sub, jti: claimed.jti, unverified: true };
}

function fail(rt: Runtime, reason: Reason, source: Authenticated['source'], unverified?: Unverified): Authenticated {
  rt.metrics.tokenFailures.labels(reason).inc();
  return unverified ? { ok: false, reason, source, unverified } : { ok: false, reason, source };
}
