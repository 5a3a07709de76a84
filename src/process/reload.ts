// The one reload pipeline, for a single process, a cluster worker and a cluster primary
// alike: read the config, refuse what only a restart can change, check the certificate
// pair, build the new runtime, then let the caller put it in force (swap a server's
// runtime, or relay the config to the workers). Every outcome is logged and answered here.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError, formatProblem, parseConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { Secret } from '../config/secret.ts';
import type { Logger } from '../observe/logger.ts';
import { createRuntime, type Runtime } from '../runtime.ts';
import { readServerTls, type ServerTlsMaterial } from '../tls/server.ts';

export interface ReloadResult {
  ok: boolean;
  /** why the reload was refused: every config problem, with its path */
  problems?: string[];
  /** accepted, but these changes only take effect after a restart */
  warnings?: string[];
  certificate?: { fingerprint: string; serial: string };
}

/** A JSON form of a config section that compares secrets by value (hashed), not by source. */
export function fingerprintSection(section: unknown): string {
  return JSON.stringify(section, function (this: Record<string, unknown>, key: string, value: unknown) {
    const raw = this[key];
    if (raw instanceof Secret) return `secret:${createHash('sha256').update(raw.reveal()).digest('hex')}`;
    return value;
  });
}

/** What the revocation store is built from: its own section and the Redis connection. */
export function revocationSettings(config: Config): string {
  return fingerprintSection({ revocation: config.revocation, redis: config.redis });
}

/** Differences a reload cannot apply to open listeners: refused, or accepted with a warning. */
export function restartOnlyChanges(from: Config, to: Config, opts: { cluster?: boolean } = {}): { refuse: string[]; warn: string[] } {
  const refuse: string[] = [];
  const warn: string[] = [];
  if (Boolean(from.server.tls) !== Boolean(to.server.tls)) {
    refuse.push('server.tls: TLS cannot be switched on or off by a reload; restart Keyhole');
  }
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(from.server.listen, to.server.listen)) warn.push('server.listen changed: takes effect after a restart');
  if (!same(from.admin.listen, to.admin.listen)) warn.push('admin.listen changed: takes effect after a restart');
  if (!same(from.server.redirectHttp, to.server.redirectHttp)) warn.push('server.redirectHttp changed: takes effect after a restart');
  if (from.server.http2 !== to.server.http2) warn.push('server.http2 changed: takes effect after a restart');
  // The logger is made once, at start; audit lines follow a reload (the runtime opens them).
  if (from.log.destination !== to.log.destination) warn.push('log.destination changed: takes effect after a restart');
  // A cluster primary starts or drains workers; a single process cannot become a cluster.
  if (!opts.cluster && from.workers !== to.workers) warn.push('workers changed: takes effect after a restart');
  return { refuse, warn };
}

/**
 * The config file and its YAML text (what cluster workers start from), with the same
 * problem a load gives when the file cannot be read.
 */
export function readConfig(file: string): { config: Config; yaml: string } {
  let yaml: string;
  try {
    yaml = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }]);
  }
  return { config: parseConfig(yaml, { baseDir: dirname(resolve(file)) }), yaml };
}

/** One at a time: a reload asked for while another runs starts when that one has ended. */
export function oneAtATime(run: () => Promise<ReloadResult>): () => Promise<ReloadResult> {
  let running: Promise<unknown> = Promise.resolve();
  return () => {
    const next = running.then(run);
    running = next.catch(() => undefined);
    return next;
  };
}

/** The new runtime, built from a config that passed every check, for the caller to put in force. */
export interface BuiltReload {
  next: Config;
  runtime: Runtime;
  /** the certificate pair `next` names (undefined with TLS off) */
  material: ServerTlsMaterial | undefined;
  /** the new runtime took the current revocation store over */
  keepRevocation: boolean;
}

/** What putting the new runtime in force gave. */
export interface SwapOutcome {
  /** what did not take the new config (cluster workers): the reload is incomplete */
  problems?: string[];
  /** the certificate now served, when it changed */
  certificate?: { fingerprint: string; serial: string } | undefined;
  /** the fields of the 'configuration reloaded' line */
  logged: Record<string, unknown>;
}

export interface ReloadSteps {
  logger: Logger;
  /** the runtime in force */
  current: Runtime;
  /** the next config: the file, or the text a cluster primary sent; throws to refuse */
  read(): Config;
  /** part of a cluster: the primary owns the number of workers, a reload resizes the group */
  cluster: boolean;
  /**
   * The revocation store cannot change by a reload (a cluster primary: its workers' stores
   * hear revocations through it). Otherwise a change of its settings builds a new store.
   */
  revocationFixed?: boolean;
  /** puts the built runtime in force */
  swap(built: BuiltReload): SwapOutcome | Promise<SwapOutcome>;
}

/** Reads, checks, builds and swaps; a refused reload leaves the running configuration as it was. */
export async function reloadConfig(steps: ReloadSteps): Promise<ReloadResult> {
  const log = steps.logger;
  const refuse = (problems: string[]): ReloadResult => {
    log.error({ problems }, 'reload refused: the running configuration stays');
    return { ok: false, problems };
  };
  let next: Config;
  try {
    next = steps.read();
  } catch (err) {
    return refuse(err instanceof ConfigError ? err.problems.map(formatProblem) : [String((err as Error).message)]);
  }
  const current = steps.current;
  const { refuse: blockers, warn } = restartOnlyChanges(current.config, next, { cluster: steps.cluster });
  // The revocation store survives a reload unless its own settings changed: a reload
  // must never bring a revoked token back to life.
  const keepRevocation = revocationSettings(current.config) === revocationSettings(next);
  if (!keepRevocation && steps.revocationFixed) {
    blockers.push('revocation: the store cannot change by a reload while workers run; restart Keyhole');
  }
  if (blockers.length > 0) return refuse(blockers);

  let material: ServerTlsMaterial | undefined;
  if (next.server.tls) {
    try {
      material = readServerTls(next.server.tls);
    } catch (err) {
      return refuse([(err as Error).message]);
    }
  }
  let runtime: Runtime;
  try {
    runtime = await createRuntime(next, { logger: log, metrics: current.metrics, ...(keepRevocation ? { revocation: current.revocation } : {}) });
  } catch (err) {
    return refuse([`runtime: ${(err as Error).message}`]);
  }

  const { problems = [], certificate, logged } = await steps.swap({ next, runtime, material, keepRevocation });
  for (const w of warn) log.warn(w);
  if (problems.length > 0) {
    log.error({ problems }, 'reload incomplete: some workers kept their configuration');
    return { ok: false, problems };
  }
  log.info(logged, 'configuration reloaded');
  return { ok: true, ...(warn.length ? { warnings: warn } : {}), ...(certificate ? { certificate } : {}) };
}
