// Everything a request handler needs, built once from a Config: the verifier, the
// revocation store, the provider registry, metrics, the audit log. Reload (SIGHUP) builds
// a new Runtime and swaps it in; in-flight requests keep the one they started with.
import type { Logger } from 'pino';
import { loadKey } from '../auth/keys.js';
import { MemoryRevocationStore, type RevocationStore } from '../auth/revocation.js';
import { TokenVerifier } from '../auth/verify.js';
import type { Config } from '../config/schema.js';
import { AuditLog } from '../observe/audit.js';
import { Metrics } from '../observe/metrics.js';
import { createProvider } from '../providers/kinds.js';
import { ProviderRegistry } from '../providers/registry.js';
import { Cors } from './cors.js';

export interface Runtime {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly audit: AuditLog;
  readonly verifier: TokenVerifier;
  readonly revocation: RevocationStore;
  readonly registry: ProviderRegistry;
  readonly cors: Cors;
  close(): Promise<void>;
}

export interface RuntimeDeps {
  logger: Logger;
  metrics?: Metrics;
  revocation?: RevocationStore;
}

export async function createRuntime(config: Config, deps: RuntimeDeps): Promise<Runtime> {
  const metrics = deps.metrics ?? new Metrics();
  const keys = await Promise.all(config.auth.keys.map(loadKey));
  const verifier = new TokenVerifier(keys, config.auth);
  verifier.onCache = (hit) => metrics.countCache(hit);
  const revocation = deps.revocation ?? new MemoryRevocationStore(Math.ceil(config.auth.maxTokenLifetime / 1000) + config.auth.clockTolerance);
  const registry = new ProviderRegistry(config.providers.map(createProvider));
  metrics.revocationProbe = () => revocation.ready();
  return {
    config,
    logger: deps.logger,
    metrics,
    audit: new AuditLog(config.log.audit ? deps.logger.child({ kind: 'audit' }) : undefined),
    verifier,
    revocation,
    registry,
    cors: new Cors(config.cors.origins, config.cors.maxAge),
    async close() {
      await registry.close();
      await revocation.close();
    },
  };
}
