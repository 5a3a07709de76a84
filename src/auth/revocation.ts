// "API tokens can be reset at any time": revoke one token by jti, or every token of a
// subject issued up to now. The interface is what the Redis-backed store implements too.
//
// Both kinds must outlive every token they kill, and a token's times come from the issuer's
// clock, which may run up to auth.clockTolerance ahead of ours: verify.ts accepts an iat up
// to that far in the future and an exp that far in the past. So, for a revocation at `now`:
// - a subject revocation kills every token with iat <= now + clockTolerance (a token minted
//   just before the revocation on a clock ahead of ours dies too; the price: a token minted
//   right after it, on a clock in step with ours, passes only once its iat is past that);
// - a jti revocation is kept until no token accepted now can still be accepted: at least
//   now + maxTokenLifetime + 2 × clockTolerance, whatever exp the caller gives.
// A third kind serves introspection (auth.introspect.logout): an app session cookie logged
// out through Keyhole, kept by the SHA-256 of its value (never the value) until a given
// second, the app's own session lifetime.
import type { SessionClaims } from './claims.ts';

export class RevocationUnavailable extends Error {}

/** The token time settings revocation depends on (auth section). */
export interface TokenTimes {
  /** ms */
  maxTokenLifetime: number;
  /** seconds */
  clockTolerance: number;
}

/**
 * Seconds after `now` that a token accepted at `now` may still be accepted: its iat up to
 * clockTolerance ahead, its exp up to maxTokenLifetime after that iat, accepted clockTolerance late.
 */
export function acceptanceHorizon(times: TokenTimes): number {
  return Math.ceil(times.maxTokenLifetime / 1000) + 2 * times.clockTolerance;
}

/** The iat cut-off of a subject revocation made at `now`: every token issued at or before it dies. */
export function subjectCutoff(now: number, times: TokenTimes): number {
  return now + times.clockTolerance;
}

// A caller's exp beyond the horizon is honoured (a token without iat may have a far exp and
// become acceptable later), but no further than this: a typo must not pin an entry for ever.
const MAX_EXTRA_SECONDS = 366 * 86_400;

/** Until when a jti revocation made at `now` is kept: the horizon, or the caller's exp (+ tolerance) when later. */
export function tokenRevokedUntil(now: number, exp: unknown, times: TokenTimes): number {
  const horizon = now + acceptanceHorizon(times);
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return horizon;
  return Math.max(horizon, Math.min(Math.ceil(exp) + times.clockTolerance, now + MAX_EXTRA_SECONDS));
}

export interface RevocationStore {
  /** true when revoked; throws RevocationUnavailable when the store cannot tell (fail closed) */
  isRevoked(claims: SessionClaims): boolean | Promise<boolean>;
  /**
   * revokes one token until `expiresAt` (seconds since epoch), and never for less than the
   * store's horizon from now: a caller's early expiry cannot free a live token
   */
  revokeToken(jti: string, expiresAt: number): Promise<void>;
  /** revokes every token of `sub` issued at or before `at` (seconds since epoch) */
  revokeSubject(sub: string, at: number): Promise<void>;
  /**
   * marks an app session (the SHA-256 hex of its cookie value) logged out until `until`
   * (seconds since epoch); a later mark of the same session is kept
   */
  revokeSession(hash: string, until: number): Promise<void>;
  /** true when that session was logged out; throws RevocationUnavailable like isRevoked */
  isSessionRevoked(hash: string): boolean | Promise<boolean>;
  /** false while the store cannot answer: readiness reports it */
  ready(): boolean;
  close(): Promise<void>;
}

/**
 * A subject revocation applies to tokens issued at or before the revocation second:
 * iat has one-second resolution, so a token minted in that same second dies too (fail
 * closed). A token without iat counts as issued before any revocation.
 */
export function revokedBySubject(claims: SessionClaims, notBefore: number | undefined): boolean {
  return notBefore !== undefined && (claims.iat === undefined || claims.iat <= notBefore);
}

/** One process, in memory: the embedded default and single-replica setups. */
export class MemoryRevocationStore implements RevocationStore {
  protected readonly tokens = new Map<string, number>();
  protected readonly subjects = new Map<string, number>();
  protected readonly sessions = new Map<string, number>();
  /**
   * a cluster worker in memory mode: shares its logouts with the group (the primary relays
   * them to every worker) and resolves once all of them hold it
   */
  shareSession: ((hash: string, until: number) => Promise<void>) | undefined;
  private readonly sweeper: NodeJS.Timeout;

  /**
   * `horizonSeconds`: how long a subject revocation is kept past its second, and the least a
   * jti revocation is kept past now (the longest token lifetime, with the clock tolerance).
   */
  private readonly horizonSeconds: number;
  constructor(horizonSeconds: number) {
    this.horizonSeconds = horizonSeconds;
    this.sweeper = setInterval(() => this.sweep(), 60_000).unref();
  }

  isRevoked(claims: SessionClaims): boolean {
    if (claims.jti !== undefined && this.tokens.has(claims.jti)) return true;
    return revokedBySubject(claims, this.subjects.get(claims.sub));
  }

  async revokeToken(jti: string, expiresAt: number, now = Math.floor(Date.now() / 1000)): Promise<void> {
    // Never shorter than the horizon, nor than a revocation of the same jti already held.
    this.tokens.set(jti, Math.max(Math.ceil(expiresAt), now + this.horizonSeconds, this.tokens.get(jti) ?? 0));
  }

  async revokeSubject(sub: string, at: number): Promise<void> {
    this.subjects.set(sub, Math.max(at, this.subjects.get(sub) ?? 0));
  }

  async revokeSession(hash: string, until: number): Promise<void> {
    this.holdSession(hash, until);
    await this.shareSession?.(hash, this.sessions.get(hash)!);
  }

  /** Applies a logout here only (what a relayed one does). */
  holdSession(hash: string, until: number): void {
    this.sessions.set(hash, Math.max(Math.ceil(until), this.sessions.get(hash) ?? 0));
  }

  isSessionRevoked(hash: string, now = Date.now() / 1000): boolean {
    const until = this.sessions.get(hash);
    return until !== undefined && until >= now;
  }

  ready(): boolean {
    return true;
  }

  sweep(now = Date.now() / 1000): void {
    for (const [jti, exp] of this.tokens) if (exp < now) this.tokens.delete(jti);
    for (const [hash, until] of this.sessions) if (until < now) this.sessions.delete(hash);
    for (const [sub, at] of this.subjects) if (at + this.horizonSeconds < now) this.subjects.delete(sub);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }
}
