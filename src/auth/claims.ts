// The session claims Keyhole acts on, checked and canonicalised once per token.
import type { JWTPayload } from 'jose';
import { canonicalPrefix } from '../uri.ts';

export interface SessionClaims {
  readonly sub: string;
  readonly exp: number;
  readonly iat: number | undefined;
  readonly jti: string | undefined;
  readonly org: string | undefined;
  readonly project: string | undefined;
  /** canonical URI prefixes the holder may read */
  readonly scope: readonly string[];
  /** one canonical URI the holder may read */
  readonly uri: string | undefined;
}

export class ClaimsError extends Error {}
/** exp - iat over auth.maxTokenLifetime: its own reason, so the issuer learns what to change. */
export class LifetimeError extends ClaimsError {}

const optionalString = (payload: JWTPayload, name: string): string | undefined => {
  const v = payload[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') throw new ClaimsError(`claim ${name} must be a non-empty string`);
  return v;
};

export function toSessionClaims(payload: JWTPayload, maxLifetimeSeconds: number): SessionClaims {
  const { sub, exp, iat, jti } = payload;
  if (typeof sub !== 'string' || sub === '') throw new ClaimsError('claim sub is required');
  if (typeof exp !== 'number') throw new ClaimsError('claim exp is required');
  if (jti !== undefined && (typeof jti !== 'string' || jti === '')) throw new ClaimsError('claim jti must be a non-empty string');
  const issued = typeof iat === 'number' ? iat : Math.floor(Date.now() / 1000);
  if (exp - issued > maxLifetimeSeconds) throw new LifetimeError(`token lifetime ${exp - issued}s exceeds auth.maxTokenLifetime ${maxLifetimeSeconds}s`);

  let scope: string[] = [];
  const rawScope = payload.scope;
  if (rawScope !== undefined) {
    const list = typeof rawScope === 'string' ? rawScope.split(' ').filter(Boolean) : rawScope;
    if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) throw new ClaimsError('claim scope must be a list of URI prefixes');
    try {
      scope = (list as string[]).map(canonicalPrefix);
    } catch {
      throw new ClaimsError('claim scope holds an invalid URI prefix');
    }
  }
  let uri: string | undefined;
  const rawUri = optionalString(payload, 'uri');
  if (rawUri !== undefined) {
    try {
      uri = canonicalPrefix(rawUri);
    } catch {
      throw new ClaimsError('claim uri is not a valid URI');
    }
  }
  if (scope.length === 0 && uri === undefined) throw new ClaimsError('token grants nothing: scope or uri claim required');
  return {
    sub,
    exp,
    iat: typeof iat === 'number' ? iat : undefined,
    jti: jti as string | undefined,
    org: optionalString(payload, 'org'),
    project: optionalString(payload, 'project'),
    scope,
    uri,
  };
}
