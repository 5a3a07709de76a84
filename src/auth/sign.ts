// Signs session tokens with a configured HS key: `keyhole token`, tests and benchmarks.
// (The labeling app signs real ones; docs/integrate.md shows how.)
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { AuthConfig } from './schema.ts';

export interface TokenRequest {
  sub: string;
  scope?: string[];
  uri?: string;
  org?: string;
  project?: string;
  ttlSeconds?: number;
  kid?: string;
  /** seconds since epoch; default now */
  iat?: number;
  jti?: string;
}

/** Reads only auth.issuer, auth.audience and auth.keys: `keyhole token` loads no more of the file. */
export async function signDevToken(config: { auth: Pick<AuthConfig, 'issuer' | 'audience' | 'keys'> }, req: TokenRequest): Promise<string> {
  const key = config.auth.keys.find((k) => 'secret' in k && (req.kid === undefined || k.kid === req.kid));
  if (!key || !('secret' in key)) throw new Error(req.kid ? `no HS key with kid ${req.kid}` : 'the config has no HS key to sign with');
  const first = (v: string | string[]) => (Array.isArray(v) ? v[0]! : v);
  const iat = req.iat ?? Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {};
  if (req.scope && req.scope.length > 0) claims.scope = req.scope;
  if (req.uri) claims.uri = req.uri;
  if (req.org) claims.org = req.org;
  if (req.project) claims.project = req.project;
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: key.algorithms[0]!, typ: 'JWT', ...(key.kid ? { kid: key.kid } : {}) })
    .setIssuer(first(config.auth.issuer))
    .setAudience(first(config.auth.audience))
    .setSubject(req.sub)
    .setIssuedAt(iat)
    .setExpirationTime(iat + (req.ttlSeconds ?? 3600))
    .setJti(req.jti ?? randomUUID());
  return jwt.sign(Buffer.from(key.secret.reveal(), 'utf8'));
}
