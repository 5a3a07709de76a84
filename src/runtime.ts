// Everything a request handler needs, built once from a Config: the verifier, the
// revocation store, the provider registry, metrics, the audit log. Reload (SIGHUP) builds
// a new Runtime and swaps it in; in-flight requests keep the one they started with.
import type { Logger } from 'pino';
import { loadKey } from './auth/keys.ts';
import { MemoryRevocationStore, type RevocationStore } from './auth/revocation.ts';
import { RedisRevocationStore } from './auth/revocation-redis.ts';
import { AuditStream } from './observe/audit-stream.ts';
import { preflightRedisProviders } from './providers/redis.ts';
import { TokenVerifier } from './auth/verify.ts';
import type { Config } from './config/schema.ts';
import { AuditLog } from './observe/audit.ts';
import { auditLogOptions } from './observe/destinations.ts';
import { Metrics, type CloudCredentialState } from './observe/metrics.ts';
import { createProvider } from './providers/kinds.ts';
import { ProviderRegistry } from './providers/registry.ts';
import type { CredentialState } from './providers/types.ts';
import { Cors } from './http/cors.ts';
import { securityHeaderFields } from './http/answer.ts';
import { AppProxy } from './app/proxy.ts';
import { logoutHook } from './app/logout.ts';
import { Introspector } from './auth/introspect.ts';
import { Limiter } from './limits/limiter.ts';
import type { LimitsConfig } from './limits/schema.ts';
import { MemoryLimitStore, type LimitStore } from './limits/store.ts';
import { RedisLimitStore } from './limits/redis-store.ts';
import type { AlertSink } from './limits/alerts.ts';

export interface Runtime {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly audit: AuditLog;
  readonly verifier: TokenVerifier;
  readonly revocation: RevocationStore;
  readonly registry: ProviderRegistry;
  readonly cors: Cors;
  /** header fields on every answer of the data listener (HSTS, referrer policy) */
  readonly securityHeaders: readonly string[];
  /** asks the app who a request's user is (auth.introspect, when enabled) */
  readonly introspector: Introspector | undefined;
  /** the labeling app behind Keyhole's front (the `app` section) */
  readonly app: AppProxy | undefined;
  /** limits, quotas and alerts (the `limits` section); undefined: no limits, nothing runs for them */
  readonly limiter: Limiter | undefined;
  /** `keepRevocation`: a reloaded runtime took the revocation store over, leave it open */
  close(opts?: { keepRevocation?: boolean }): Promise<void>;
}

export interface RuntimeDeps {
  logger: Logger;
  metrics?: Metrics;
  revocation?: RevocationStore;
}

export async function createRuntime(config: Config, deps: RuntimeDeps): Promise<Runtime> {
  // First: an audit file that cannot be opened refuses the config before anything is opened.
  const auditOptions = auditLogOptions(config.log);
  const metrics = deps.metrics ?? new Metrics();
  const keys = await Promise.all(config.auth.keys.map(loadKey));
  const verifier = new TokenVerifier(keys, config.auth);
  verifier.onCache = (hit) => metrics.countCache(hit);
  const subjectTtlSeconds = Math.ceil(config.auth.maxTokenLifetime / 1000) + config.auth.clockTolerance;
  const revocation =
    deps.revocation ??
    (config.revocation.store === 'redis' && config.redis
      ? await RedisRevocationStore.open({ connection: config.redis, settings: config.revocation, subjectTtlSeconds, logger: deps.logger, metrics })
      : new MemoryRevocationStore(subjectTtlSeconds));
  const redis = config.redis;
  const auditStream = redis?.auditStream
    ? await AuditStream.open(redis, redis.auditStream, metrics, deps.logger).catch(async (err: unknown) => {
        if (!deps.revocation) await revocation.close();
        throw err;
      })
    : undefined;
  await preflightRedisProviders(config.providers, deps.logger).catch(async (err: unknown) => {
    if (!deps.revocation) await revocation.close();
    await auditStream?.close();
    throw err;
  });
  const audit = new AuditLog(config.log.audit ? deps.logger : undefined, auditStream, auditOptions);
  const limits = config.limits;
  let limiter: Limiter | undefined;
  try {
    limiter = limits ? await createLimiter(limits, config, { metrics, logger: deps.logger, audit: config.log.audit ? audit : undefined }) : undefined;
  } catch (err) {
    if (!deps.revocation) await revocation.close();
    await auditStream?.close();
    throw err;
  }
  const registry = new ProviderRegistry(config.providers.map(createProvider));
  const limitsReady = limiter ? (): boolean => limiter.ready() : undefined;
  if (limitsReady) metrics.limitsProbe = limitsReady;
  metrics.revocationProbe = () => revocation.ready();
  // Cloud identities: asked once now, so /readyz and /metrics know before the first request.
  const credentialed: [string, CredentialState][] = [];
  for (const p of registry.providers) {
    const state = p.credentials?.();
    if (state === undefined) continue;
    credentialed.push([p.name, state]);
    void p.warm?.().then((problem) => {
      if (problem !== undefined) deps.logger.warn({ provider: p.name, problem }, `provider ${p.name}: no usable credentials from its identity yet (readyz false until it has): ${problem}`);
    });
  }
  const credentialsProbe = credentialed.length > 0 ? (): Iterable<[string, CloudCredentialState]> => credentialed : undefined;
  metrics.credentialsProbe = credentialsProbe;
  const introspect = config.auth.introspect;
  const introspector = introspect?.enabled ? new Introspector(introspect, config.auth.cookie.name) : undefined;
  const app = config.app
    ? new AppProxy(config.app, {
        sessionCookie: config.auth.cookie.name,
        proto: config.server.tls ? 'https' : 'http',
        publicHost: config.server.publicUrl ? new URL(config.server.publicUrl).host : undefined,
        logger: deps.logger.child({ component: 'app' }),
        logout: logoutHook(introspector, introspect?.logout, revocation),
      })
    : undefined;
  return {
    config,
    logger: deps.logger,
    metrics,
    audit,
    verifier,
    revocation,
    registry,
    cors: new Cors(config.cors.origins, config.cors.maxAge),
    securityHeaders: securityHeaderFields(config.server),
    introspector,
    app,
    limiter,
    async close(opts = {}) {
      await Promise.all([app?.close(), introspector?.close(), limiter?.close()]);
      // A reload may have handed the shared Metrics to a newer limiter: only remove our own probe.
      if (limitsReady && metrics.limitsProbe === limitsReady) metrics.limitsProbe = undefined;
      if (metrics.credentialsProbe === credentialsProbe) metrics.credentialsProbe = undefined;
      await registry.close();
      if (!opts.keepRevocation) await revocation.close();
      await auditStream?.close();
    },
  };
}

/**
 * In memory, the counters belong to the process, not to one configuration: a reload (which
 * keeps the same Metrics) keeps counting in the same store rather than forgetting every quota.
 */
const memoryStores = new WeakMap<Metrics, MemoryLimitStore>();

async function createLimiter(limits: LimitsConfig, config: Config, deps: { metrics: Metrics; logger: Logger; audit: AuditLog | undefined }): Promise<Limiter> {
  const { metrics, logger, audit } = deps;
  // Also refused by the config check: N workers would each count the whole limits.
  if (limits.store === 'memory' && config.workers !== 1) throw new Error(`limits.store memory counts in one process: with workers: ${config.workers} use store: redis`);
  const redis = config.redis;
  if (limits.store === 'redis' && !redis) throw new Error('limits.store redis needs the top-level redis: section');
  const log = logger.child({ component: 'limits' });
  let store: LimitStore;
  if (limits.store === 'redis' && redis) {
    const shared = await RedisLimitStore.open({ connection: redis, logger: log });
    shared.onState = (up) => {
      if (up) log.info('redis limits store is up');
      else log.warn(limits.onRedisError === 'allow' ? 'redis limits store is down: onRedisError allow, limited requests are served unchecked' : 'redis limits store is down: limited requests fail closed until it returns');
    };
    store = shared;
  } else {
    let own = memoryStores.get(metrics);
    if (own === undefined) memoryStores.set(metrics, (own = new MemoryLimitStore(redis?.keyPrefix ?? 'keyhole:')));
    store = own;
  }
  // An alert is an audit line (chained with the access events) and a Redis stream entry; with
  // the audit log off (log.audit: false) it is still a warn line of the operational log.
  const sink: AlertSink = audit ? { alert: (a) => audit.alert(a) } : { alert: (a) => logger.warn({ kind: 'alert', alert: a }, 'alert') };
  return new Limiter({
    config: limits,
    store,
    ownsStore: limits.store === 'redis',
    prefix: redis?.keyPrefix ?? 'keyhole:',
    metrics: metrics.limits(),
    logger: log,
    sink,
    local: limits.store === 'memory',
  });
}
