// One undici Pool per upstream origin: keep-alive, bounded connections, timeouts, and
// the provider's TLS material (CA pinning, client certificate for mTLS).
import type { LookupFunction } from 'node:net';
import type { buildConnector as BuildConnector, Pool as UndiciPool } from 'undici';
import { buildConnector, Pool } from './undici.ts';
import type { ClientTlsConfig } from '../config/blocks.ts';
import { clientTlsOptions } from '../tls/client.ts';
import { guardedConnector, guardedLookup, type AddressPolicy } from './ssrf.ts';

export interface PoolOptions {
  connections: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  tls?: ClientTlsConfig | undefined;
  /** SSRF guard: which non-public addresses this upstream may reach (checked at connect time) */
  addresses?: AddressPolicy | undefined;
  /** resolver under the guard; tests inject one to play DNS rebinding */
  lookup?: LookupFunction | undefined;
}

export function createPool(origin: string, opts: PoolOptions): UndiciPool {
  return new Pool(origin, {
    connections: opts.connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 120_000,
    headersTimeout: opts.headersTimeoutMs,
    bodyTimeout: opts.bodyTimeoutMs,
    connect: connectFor(opts),
  });
}

function connectFor(opts: PoolOptions): BuildConnector.BuildOptions | BuildConnector.connector {
  const base = { timeout: opts.connectTimeoutMs, ...clientTlsOptions(opts.tls) };
  if (!opts.addresses) return base;
  const lookup = guardedLookup(opts.addresses, opts.lookup);
  return guardedConnector(buildConnector({ ...base, lookup }), opts.addresses);
}
