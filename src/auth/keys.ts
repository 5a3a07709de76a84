// Turns configured keys into jose verification keys, each with its algorithm allowlist.
import { readFileSync } from 'node:fs';
import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, customFetch, importJWK, type JWK, type JWTVerifyGetKey } from 'jose';
import type { fetch as UndiciFetch } from 'undici';
import { fullUndici } from '../relay/undici.ts';
import { clientTlsOptions } from '../tls/client.ts';
import type { KeyConfig } from './schema.ts';

export type VerifyKey =
  | { kind: 'static'; kid: string | undefined; algorithms: readonly string[]; key: KeyObject | Uint8Array | Awaited<ReturnType<typeof importJWK>> }
  | { kind: 'jwks'; algorithms: readonly string[]; resolve: JWTVerifyGetKey; url: string };

/** HS keys shorter than the hash output are brute-forceable: refuse them (RFC 7518 §3.2). */
export const MIN_HMAC_BYTES = 32;

export async function loadKey(cfg: KeyConfig): Promise<VerifyKey> {
  if ('secret' in cfg) {
    const raw = Buffer.from(cfg.secret.reveal(), 'utf8');
    if (raw.length < MIN_HMAC_BYTES) throw new Error(`HMAC secret must be at least ${MIN_HMAC_BYTES} bytes`);
    return { kind: 'static', kid: cfg.kid, algorithms: cfg.algorithms, key: createSecretKey(raw) };
  }
  if ('publicKey' in cfg) {
    const key = createPublicKey(readFileSync(cfg.publicKey));
    return { kind: 'static', kid: cfg.kid, algorithms: cfg.algorithms, key };
  }
  if ('jwk' in cfg) {
    const jwk = cfg.jwk as JWK;
    if (jwk.d !== undefined || jwk.k !== undefined) throw new Error('jwk must be a public key (no d or k)');
    const alg = jwk.alg ?? cfg.algorithms[0];
    const key = await importJWK(jwk, alg);
    return { kind: 'static', kid: cfg.kid ?? jwk.kid, algorithms: cfg.algorithms, key };
  }
  // jose would fetch with the global fetch, which is Node's bundled undici (7.x on Node 24:
  // the line with the close-after-body crash, #5360). The JWKS comes through the undici 8
  // package instead, with the JWKS host's TLS material when it has some.
  const undici = fullUndici();
  const dispatcher = cfg.tls ? new undici.Agent({ connect: clientTlsOptions(cfg.tls) }) : undefined;
  const resolve = createRemoteJWKSet(new URL(cfg.jwksUrl), {
    cacheMaxAge: cfg.cacheMaxAge,
    cooldownDuration: cfg.cooldown,
    timeoutDuration: cfg.timeout,
    [customFetch]: ((url: string, options: Parameters<typeof UndiciFetch>[1]) =>
      undici.fetch(url, dispatcher ? { ...options, dispatcher } : options)) as unknown as typeof fetch,
  });
  return { kind: 'jwks', algorithms: cfg.algorithms, resolve, url: cfg.jwksUrl };
}
