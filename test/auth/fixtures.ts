// Asymmetric signing keys for token tests, made once per test process: the private half
// signs test tokens, the public half is what Keyhole is configured with (PEM file or JWK).
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, type JWK, type JWTPayload } from 'jose';

export interface TestKey {
  alg: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** file holding the public key as SPKI PEM */
  pemFile: string;
  pem: string;
  jwk: JWK;
}

const dir = mkdtempSync(join(tmpdir(), 'keyhole-keys-'));
const made = new Map<string, TestKey>();

export function testKey(name: 'rs' | 'rs2' | 'es' | 'ed'): TestKey {
  const hit = made.get(name);
  if (hit) return hit;
  const pair =
    name === 'rs' || name === 'rs2'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : name === 'es'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519');
  const pem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const pemFile = join(dir, `${name}.pub.pem`);
  writeFileSync(pemFile, pem);
  const alg = name === 'es' ? 'ES256' : name === 'ed' ? 'EdDSA' : 'RS256';
  const key: TestKey = { alg, privateKey: pair.privateKey, publicKey: pair.publicKey, pemFile, pem, jwk: pair.publicKey.export({ format: 'jwk' }) as JWK };
  made.set(name, key);
  return key;
}

export interface Claims extends JWTPayload {
  scope?: string[];
  uri?: string;
  org?: string;
  project?: string;
}

/** Signs a token with full control over header and claims (defaults: iss/aud/sub/iat/exp valid). */
export async function sign(
  key: KeyObject | Uint8Array,
  header: { alg: string; kid?: string; [k: string]: unknown },
  claims: Claims,
  opts: { iss?: string; aud?: string; now?: number; ttl?: number } = {},
): Promise<string> {
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: opts.iss ?? 'test-issuer', aud: opts.aud ?? 'keyhole', sub: 'alice', iat: now, exp: now + (opts.ttl ?? 600), ...claims })
    .setProtectedHeader(header)
    .sign(key);
}

export const b64u = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
