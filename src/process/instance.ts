// One serving Keyhole process (the whole thing, or one cluster worker): the runtime, the
// listeners, and the three things ops do to a running process — reload the config,
// pick up rotated certificates, drain. Signals and IPC are wired by the caller.
import { openLogDestinations } from '../observe/destinations.ts';
import { createLogger, type Logger } from '../observe/logger.ts';
import { loadConfigFile } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import type { AdminHooks } from '../server/admin.ts';
import { createRuntime, type Runtime } from '../runtime.ts';
import { KeyholeServer, type Listening } from '../server/server.ts';
import { watchTlsFiles, type ServerTlsMaterial } from '../tls/server.ts';
import { oneAtATime, reloadConfig, type BuiltReload, type ReloadResult, type SwapOutcome } from './reload.ts';

/**
 * Logs to `log.destination` (stdout or a file), batched (src/observe/line-writer.ts), but
 * never more than 100 ms late (lifecycle lines must show up while the process runs, not at
 * exit). `shared`: cluster processes share one stdout; to a pipe they write whole lines in
 * PIPE_BUF-sized writes, so their lines never interleave inside a line.
 */
export function createServeLogger(log: Pick<Config['log'], 'level' | 'destination' | 'format'>, opts: { shared?: boolean } = {}): Logger {
  return createLogger({ level: log.level, format: log.format, destination: openLogDestinations(log, { shared: opts.shared === true }).logs });
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

export class KeyholeInstance {
  /** Re-reads the config file; one reload at a time. */
  readonly reload: () => Promise<ReloadResult> = oneAtATime(() => this.reloadNow());
  private watcher: { close(): void } | undefined;

  readonly server: KeyholeServer;
  private readonly opts: InstanceOptions;
  private constructor(
    server: KeyholeServer,
    opts: InstanceOptions,
  ) {
    this.server = server;
    this.opts = opts;
  }

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

  private reloadNow(): Promise<ReloadResult> {
    const file = this.opts.configFile;
    if (!file) return Promise.resolve({ ok: false, problems: ['the embedded default cannot be reloaded; start with --config FILE'] });
    const done = reloadConfig({
      logger: this.opts.logger,
      current: this.runtime,
      read: this.opts.loadConfig ?? (() => loadConfigFile(file)),
      cluster: this.opts.cluster === true,
      swap: (built) => this.swap(built),
    });
    // A cluster's reloads are counted once, by the primary that ran them.
    if (this.opts.cluster) return done;
    return done.then((r) => {
      this.runtime.metrics.configReloads.labels(r.ok ? 'ok' : 'refused').inc();
      return r;
    });
  }

  /** Same tick: the new config and its certificate take over together. */
  private swap({ next, runtime, material, keepRevocation }: BuiltReload): SwapOutcome {
    const log = this.opts.logger;
    const previous = this.runtime.config;
    const closed = this.server.swap(runtime, { keepRevocation });
    const cert = this.server.reloadTls(material) ?? material;
    const inFlight = this.server.inFlight;
    closed.then(() => log.info('previous configuration closed: its last in-flight request ended'), () => undefined);
    if (next.server.tls && JSON.stringify(next.server.tls) !== JSON.stringify(previous.server.tls)) this.watch();
    const certificate = cert && { fingerprint: cert.fingerprint, serial: cert.serial };
    return {
      certificate,
      logged: { providers: next.providers.map((p) => `${p.name}:${p.kind}`), inFlightOnPrevious: inFlight, ...(certificate ? { certificate } : {}) },
    };
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
