// "API tokens can be reset at any time": revoke one token by jti, or every token of a
// subject issued up to now. The interface is what the Redis-backed store implements too.
import type { SessionClaims } from './claims.js';

export class RevocationUnavailable extends Error {}

export interface RevocationStore {
  /** true when revoked; throws RevocationUnavailable when the store cannot tell (fail closed) */
  isRevoked(claims: SessionClaims): boolean | Promise<boolean>;
  /** revokes one token until its expiry (seconds since epoch) */
  revokeToken(jti: string, expiresAt: number): Promise<void>;
  /** revokes every token of `sub` issued at or before `at` (seconds since epoch) */
  revokeSubject(sub: string, at: number): Promise<void>;
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
  private readonly sweeper: NodeJS.Timeout;

  /** `subjectTtlSeconds`: how long a subject revocation is kept (the longest token lifetime). */
  constructor(private readonly subjectTtlSeconds: number) {
    this.sweeper = setInterval(() => this.sweep(), 60_000).unref();
  }

  isRevoked(claims: SessionClaims): boolean {
    if (claims.jti !== undefined && this.tokens.has(claims.jti)) return true;
    return revokedBySubject(claims, this.subjects.get(claims.sub));
  }

  async revokeToken(jti: string, expiresAt: number): Promise<void> {
    this.tokens.set(jti, expiresAt);
  }

  async revokeSubject(sub: string, at: number): Promise<void> {
    this.subjects.set(sub, Math.max(at, this.subjects.get(sub) ?? 0));
  }

  ready(): boolean {
    return true;
  }

  sweep(now = Date.now() / 1000): void {
    for (const [jti, exp] of this.tokens) if (exp < now) this.tokens.delete(jti);
    for (const [sub, at] of this.subjects) if (at + this.subjectTtlSeconds < now) this.subjects.delete(sub);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }
}
