// One serving Keyhole process (the whole thing, or one cluster worker): the runtime, the
// listeners, and the three things ops do to a running process — reload the config,
// pick up rotated certificates, drain. Signals and IPC are wired by the caller.
import { createHash } from 'node:crypto';
import { LineWriter } from '../observe/line-writer.js';
import { createLogger, type Logger } from '../observe/logger.js';
import { ConfigError, formatProblem, loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { Secret } from '../config/secret.js';
import type { AdminHooks } from '../server/admin.js';
import { createRuntime, type Runtime } from '../server/runtime.js';
import { KeyholeServer, type Listening } from '../server/server.js';
import { readServerTls, watchTlsFiles, type ServerTlsMaterial } from '../tls/server.js';

/**
 * Logs to stdout, batched (src/observe/line-writer.ts), but never more than 100 ms late
 * (lifecycle lines must show up while the process runs, not at exit). `shared`: cluster
 * processes share one stdout; to a pipe they write whole lines in PIPE_BUF-sized writes,
 * so their lines never interleave inside a line.
 */
export function createServeLogger(level: string, opts: { shared?: boolean } = {}): Logger {
  return createLogger({ level, destination: new LineWriter({ fd: 1, shared: opts.shared === true }) });
}

export interface ReloadResult {
  ok: boolean;
  /** why the reload was refused: every config problem, with its path */
  problems?: string[];
  /** accepted, but these changes only take effect after a restart */
  warnings?: string[];
  certificate?: { fingerprint: string; serial: string };
}

export interface InstanceOptions {
  /** the YAML file; without one (the embedded default) there is nothing to reload */
  configFile?: string;
  /** how a reload reads the config (default: the file); a cluster worker takes the primary's text */
  loadConfig?: () => Config;
  logger: Logger;
  hooks?: Partial<AdminHooks>;
  /** a cluster worker: the primary owns what concerns the group (the number of workers) */
  cluster?: boolean;
  /** watch the certificate and key files and swap them in when they change (default on) */
  watchCertificates?: boolean;
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
  // A cluster primary starts or drains workers; a single process cannot become a cluster.
  if (!opts.cluster && from.workers !== to.workers) warn.push('workers changed: takes effect after a restart');
  return { refuse, warn };
}

export class KeyholeInstance {
  private reloading: Promise<unknown> = Promise.resolve();
  private watcher: { close(): void } | undefined;

  private constructor(
    readonly server: KeyholeServer,
    private readonly opts: InstanceOptions,
  ) {}

  static async create(config: Config, opts: InstanceOptions): Promise<KeyholeInstance> {
    const runtime = await createRuntime(config, { logger: opts.logger });
    let instance: KeyholeInstance | undefined;
    const hooks: Partial<AdminHooks> = {
      ...(opts.configFile ? { reload: () => instance!.reload() } : {}),
      ...opts.hooks,
    };
    instance = new KeyholeInstance(new KeyholeServer(runtime, hooks), opts);
    return instance;
  }

  get runtime(): Runtime {
    return this.server.current;
  }

  async listen(): Promise<Listening> {
    const where = await this.server.listen();
    this.watch();
    return where;
  }

  async listenData(): Promise<Omit<Listening, 'admin'>> {
    const where = await this.server.listenData();
    this.watch();
    return where;
  }

  private watch(): void {
    const tls = this.runtime.config.server.tls;
    if (!tls || this.opts.watchCertificates === false) return;
    this.watcher?.close();
    this.watcher = watchTlsFiles(tls, () => this.rotateCertificate('files changed'));
  }

  /** Swaps the TLS context when the files hold a new, valid pair; a broken pair is logged and ignored. */
  rotateCertificate(why: string): ServerTlsMaterial | undefined {
    const log = this.opts.logger;
    try {
      const next = this.server.reloadTls();
      if (next) log.info({ why, certificate: { fingerprint: next.fingerprint, serial: next.serial, validTo: next.validTo } }, 'certificate reloaded');
      return next;
    } catch (err) {
      log.warn({ why, problem: (err as Error).message }, 'certificate files are not a usable pair yet; the current certificate stays');
      return undefined;
    }
  }

  /** Re-reads the config file; one reload at a time. */
  reload(): Promise<ReloadResult> {
    const run = this.reloading.then(() => this.reloadNow());
    this.reloading = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(): Promise<ReloadResult> {
    const log = this.opts.logger;
    const file = this.opts.configFile;
    if (!file) return { ok: false, problems: ['the embedded default cannot be reloaded; start with --config FILE'] };
    const refuse = (problems: string[]): ReloadResult => {
      log.error({ problems }, 'reload refused: the running configuration stays');
      return { ok: false, problems };
    };
    let next: Config;
    try {
      next = this.opts.loadConfig ? this.opts.loadConfig() : loadConfigFile(file);
    } catch (err) {
      if (err instanceof ConfigError) return refuse(err.problems.map(formatProblem));
      return refuse([String((err as Error).message)]);
    }
    const current = this.runtime;
    const { refuse: blockers, warn } = restartOnlyChanges(current.config, next, { cluster: this.opts.cluster === true });
    if (blockers.length > 0) return refuse(blockers);

    let material: ServerTlsMaterial | undefined;
    if (next.server.tls) {
      try {
        material = readServerTls(next.server.tls);
      } catch (err) {
        return refuse([(err as Error).message]);
      }
    }
    // The revocation store survives a reload unless its own settings changed: a reload
    // must never bring a revoked token back to life.
    const keepRevocation = revocationSettings(current.config) === revocationSettings(next);
    let runtime: Runtime;
    try {
      runtime = await createRuntime(next, { logger: log, metrics: current.metrics, ...(keepRevocation ? { revocation: current.revocation } : {}) });
    } catch (err) {
      return refuse([`runtime: ${(err as Error).message}`]);
    }
    // Same tick: the new config and its certificate take over together.
    const closed = this.server.swap(runtime, { keepRevocation });
    const cert = this.server.reloadTls(material) ?? material;
    const inFlight = this.server.inFlight;
    closed.then(() => log.info('previous configuration closed: its last in-flight request ended'), () => undefined);
    for (const w of warn) log.warn(w);
    log.info({ providers: next.providers.map((p) => `${p.name}:${p.kind}`), inFlightOnPrevious: inFlight, ...(cert ? { certificate: { fingerprint: cert.fingerprint, serial: cert.serial } } : {}) }, 'configuration reloaded');
    if (next.server.tls && JSON.stringify(next.server.tls) !== JSON.stringify(current.config.server.tls)) this.watch();
    return { ok: true, ...(warn.length ? { warnings: warn } : {}), ...(cert ? { certificate: { fingerprint: cert.fingerprint, serial: cert.serial } } : {}) };
  }

  /** SIGTERM: readiness off, stop accepting, finish in-flight requests (bounded), close everything. */
  async drain(): Promise<{ cut: number }> {
    const log = this.opts.logger;
    const drainMs = this.runtime.config.server.drainTimeout;
    log.info({ inFlight: this.server.inFlight, drainTimeoutMs: drainMs }, 'draining');
    this.watcher?.close();
    const result = await this.server.close(drainMs);
    if (result.cut > 0) log.warn({ cut: result.cut }, 'drain timeout: cut requests still in flight');
    log.info({ cut: result.cut }, 'drained');
    return result;
  }
}

/** How a process stops: drain, flush the log, exit 0 (1 when the drain itself failed). */
export function drainThenExit(instance: KeyholeInstance, logger: Logger): void {
  instance.drain().then(
    () => {
      logger.flush();
      process.exit(0);
    },
    (err: unknown) => {
      logger.error({ err }, 'drain failed');
      process.exit(1);
    },
  );
}
