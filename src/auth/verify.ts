// Verifies session tokens: key selection by kid (or by algorithm when there is none),
// per-key algorithm allowlists, iss/aud/exp/nbf with a clock tolerance, then a bounded
// cache so a hot token costs one map lookup instead of a signature check.
import { decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from 'jose';
import { LRUCache } from 'lru-cache';
import { ReasonError } from '../reasons.ts';
import { ClaimsError, LifetimeError, toSessionClaims, type SessionClaims } from './claims.ts';
import { MAX_TOKEN_LENGTH } from './extract.ts';
import type { VerifyKey } from './keys.ts';
import type { AuthConfig } from './schema.ts';

/** A token refused, with the token_* reason. */
export class TokenError extends ReasonError {}

// The signature part may be empty so that an unsecured `alg: none` token is refused as
// token_alg (what it is) rather than as malformed; jose refuses an empty signature anyway.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

function reasonOf(err: unknown): TokenError {
  if (err instanceof TokenError) return err;
  if (err instanceof LifetimeError) return new TokenError('token_lifetime', err.message);
  if (err instanceof ClaimsError) return new TokenError('token_claims', err.message);
  if (err instanceof errors.JWTExpired) return new TokenError('token_expired', 'token expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    return err.claim === 'nbf' || err.claim === 'iat'
      ? new TokenError('token_not_yet_valid', `claim ${err.claim} is in the future`)
      : new TokenError('token_claims', `claim ${err.claim} failed: ${err.reason}`);
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return new TokenError('token_alg', 'algorithm not allowed for this key');
  if (err instanceof errors.JWKSNoMatchingKey) return new TokenError('token_unknown_kid', 'no key matches the token kid');
  if (err instanceof errors.JWSSignatureVerificationFailed) return new TokenError('token_invalid', 'signature does not verify');
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return new TokenError('token_malformed', 'malformed token');
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return new TokenError('token_invalid', 'key set unavailable');
  return new TokenError('token_invalid', 'token does not verify');
}

/**
 * The cache is keyed by the token's last 32 characters (signature: 192 pseudo-random bits),
 * not the whole 300-odd: a map lookup hashes its key on every request. Each entry keeps the
 * whole token and answers only for an identical one, so a forgery that reuses a cached
 * token's signature finds nothing and is verified (and refused) like any other.
 */
function cacheKey(token: string): string {
  return token.length > 32 ? token.slice(-32) : token;
}

interface CachedToken {
  /** the whole token: an entry answers for exactly this token, nothing that shares its key */
  token: string;
  claims: SessionClaims;
  /** ms: the cache entry dies with the token */
  expiresAt: number;
}

export class TokenVerifier {
  private readonly cache: LRUCache<string, CachedToken> | undefined;
  private readonly options: { issuer: string | string[]; audience: string | string[]; clockTolerance: number; requiredClaims: string[] };
  private readonly maxLifetime: number;
  private readonly toleranceMs: number;
  /** Counts for metrics: how often the cache saved a signature check. */
  onCache: (hit: boolean) => void = () => {};

  private readonly keys: readonly VerifyKey[];
  constructor(
    keys: readonly VerifyKey[],
    cfg: AuthConfig,
  ) {
    this.keys = keys;
    this.options = { issuer: cfg.issuer, audience: cfg.audience, clockTolerance: cfg.clockTolerance, requiredClaims: ['exp', 'sub'] };
    this.maxLifetime = Math.floor(cfg.maxTokenLifetime / 1000);
    this.toleranceMs = cfg.clockTolerance * 1000;
    this.cache = cfg.cache.max > 0 ? new LRUCache({ max: cfg.cache.max }) : undefined;
  }

  /** The claims of a token verified before and not expired since, without waiting; else undefined. */
  cached(token: string, now = Date.now()): SessionClaims | undefined {
    const key = cacheKey(token);
    const hit = this.cache?.get(key);
    if (hit === undefined || hit.token !== token) return undefined;
    if (hit.expiresAt > now) {
      this.onCache(true);
      return hit.claims;
    }
    this.cache!.delete(key);
    return undefined;
  }

  /** Resolves the session's claims, or rejects with a TokenError carrying the reason. */
  async verify(token: string, now = Date.now()): Promise<SessionClaims> {
    const hit = this.cached(token, now);
    if (hit !== undefined) return hit;
    this.onCache(false);
    const claims = await this.verifyUncached(token, now);
    this.cache?.set(cacheKey(token), { token, claims, expiresAt: claims.exp * 1000 + this.toleranceMs });
    return claims;
  }

  private async verifyUncached(token: string, now: number): Promise<SessionClaims> {
    if (token.length > MAX_TOKEN_LENGTH || !COMPACT_JWS.test(token)) throw new TokenError('token_malformed', 'not a compact JWS');
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new TokenError('token_malformed', 'unreadable protected header');
    }
    const alg = header.alg;
    if (typeof alg !== 'string' || alg === 'none') throw new TokenError('token_alg', 'algorithm none or missing');
    if (header.crit !== undefined) throw new TokenError('token_malformed', 'crit header parameters are not supported');

    const kid = header.kid;
    const candidates = this.keys.filter((k) => {
      if (!k.algorithms.includes(alg)) return false;
      if (k.kind === 'jwks') return true;
      return kid === undefined || k.kid === undefined || k.kid === kid;
    });
    if (candidates.length === 0) {
      const kidKnown = kid !== undefined && this.keys.some((k) => k.kind === 'static' && k.kid === kid);
      throw kid !== undefined && !kidKnown && !this.keys.some((k) => k.kind === 'jwks')
        ? new TokenError('token_unknown_kid', 'no key has this kid')
        : new TokenError('token_alg', `algorithm ${alg} is not allowed for any matching key`);
    }
    let last: unknown;
    for (const key of candidates) {
      try {
        const opts = { ...this.options, algorithms: [...key.algorithms], currentDate: new Date(now) };
        const { payload } =
          key.kind === 'jwks' ? await jwtVerify(token, key.resolve, opts) : await jwtVerify(token, key.key, opts);
        // jose checks iat only with maxTokenAge: a token "issued" in the future would
        // outlive a subject revocation (iat <= revokedAt), so it is refused like nbf.
        if (typeof payload.iat === 'number' && payload.iat * 1000 > now + this.toleranceMs) {
          throw new TokenError('token_not_yet_valid', 'claim iat is in the future');
        }
        return toSessionClaims(payload as JWTPayload, this.maxLifetime);
      } catch (err) {
        last = err;
        // Only a signature mismatch is worth trying the next key; a claim failure is final.
        if (!(err instanceof errors.JWSSignatureVerificationFailed) && !(err instanceof errors.JWKSNoMatchingKey)) break;
      }
    }
    throw reasonOf(last);
  }
}
