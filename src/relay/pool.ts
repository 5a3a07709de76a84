// One undici Pool per upstream origin: keep-alive, bounded connections, timeouts, and
// the provider's TLS material (CA pinning, client certificate for mTLS).
import { readFileSync } from 'node:fs';
import { Pool } from 'undici';
import type { ClientTlsConfig } from '../config/types.js';

export interface PoolOptions {
  connections: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  tls?: ClientTlsConfig | undefined;
}

export function tlsConnectOptions(tls: ClientTlsConfig | undefined): Record<string, unknown> {
  if (!tls) return {};
  return {
    ...(tls.ca ? { ca: readFileSync(tls.ca) } : {}),
    ...(tls.cert ? { cert: readFileSync(tls.cert) } : {}),
    ...(tls.key ? { key: readFileSync(tls.key) } : {}),
    ...(tls.servername ? { servername: tls.servername } : {}),
    rejectUnauthorized: !tls.insecureSkipVerify,
  };
}

export function createPool(origin: string, opts: PoolOptions): Pool {
  return new Pool(origin, {
    connections: opts.connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 120_000,
    headersTimeout: opts.headersTimeoutMs,
    bodyTimeout: opts.bodyTimeoutMs,
    connect: { timeout: opts.connectTimeoutMs, minVersion: 'TLSv1.2', ...tlsConnectOptions(opts.tls) },
  });
}
