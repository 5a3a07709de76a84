// `workers: N | auto`: a node:cluster primary and N workers sharing the data listeners.
//
// The primary serves no data. It owns the admin listener (one /readyz, one /metrics and
// one place to revoke or reload for the whole group), supervises the workers (a worker
// that dies is replaced, with backoff when it keeps dying), and relays admin actions to
// every worker over IPC: reloads always, revocations when the store is in memory (with
// Redis, every worker's own store hears the revocation over pub/sub). A new worker gets
// every revocation made so far before it starts listening.
import cluster, { type Worker } from 'node:cluster';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/schema.ts';
import { sendError } from '../http/answer.ts';
import { aggregate, render, PROMETHEUS_CONTENT_TYPE, type MetricFamily } from '../observe/exposition.ts';
import type { Logger } from '../observe/logger.ts';
import { handleAdmin, type AdminHooks } from '../server/admin.ts';
import { createRuntime, type Runtime } from '../runtime.ts';
import { AnswerCollector, receiveFromWorker, sendToWorker, type Answers, type FromWorker, type ToWorker } from './ipc.ts';
import { oneAtATime, readConfig, reloadConfig, type BuiltReload, type ReloadResult, type SwapOutcome } from './reload.ts';
import { fanOut, RelayedRevocationStore } from './revocation-fanout.ts';

/** `auto` → one per core. */
export function workerCount(setting: Config['workers']): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

/** Exponential backoff for a worker that keeps dying young: 100 ms, 200 ms, … 10 s. */
export function restartDelay(youngDeaths: number): number {
  return Math.min(100 * 2 ** Math.max(0, youngDeaths - 1), 10_000);
}

/** 1 = healthy gauges: a group is as healthy as its worst member. */
const HEALTH_GAUGES = new Set(['keyhole_revocation_store_up', 'keyhole_redis_up']);
/** Counted by the primary alone. */
const PRIMARY_COUNTS = new Set(['keyhole_config_reloads_total']);

/** A worker that lived this long before dying is not in a crash loop. */
const HEALTHY_LIFETIME_MS = 10_000;

interface Member {
  worker: Worker;
  startedAt: number;
  hello: boolean;
  listening: boolean;
  /** asked to leave (scale down): do not replace it */
  leaving: boolean;
}

class Primary {
  private readonly members = new Map<number, Member>();
  private readonly answers = new AnswerCollector();
  private desired: number;
  private youngDeaths = 0;
  private started = false;
  private stopping = false;
  private dataAddress: AddressInfo | undefined;
  private redirectAddress: AddressInfo | undefined;
  private admin: Server | undefined;
  private readonly startup: { resolve: () => void; reject: (err: Error) => void; promise: Promise<void> };
  private stopped: (() => void) | undefined;

  private readonly file: string;
  private yaml: string;
  private runtime: Runtime;
  private readonly relay: RelayedRevocationStore | undefined;
  private readonly logger: Logger;
  constructor(
    file: string,
    /** the YAML text of the config in force: what workers (re)start from */
    yaml: string,
    runtime: Runtime,
    relay: RelayedRevocationStore | undefined,
    logger: Logger,
    count: number,
  ) {
    this.file = file;
    this.yaml = yaml;
    this.runtime = runtime;
    this.relay = relay;
    this.logger = logger;
    this.desired = count;
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.startup = { resolve, reject, promise };
  }

  get listeningCount(): number {
    let n = 0;
    for (const m of this.members.values()) if (m.listening) n++;
    return n;
  }

  async start(): Promise<void> {
    for (let i = 0; i < this.desired; i++) this.fork();
    await this.startup.promise;
    const cfg = this.runtime.config;
    const admin = await this.listenAdmin();
    this.logger.info(
      {
        data: this.dataAddress,
        admin,
        redirect: this.redirectAddress,
        workers: this.desired,
        pids: [...this.members.values()].map((m) => m.worker.process.pid),
        providers: cfg.providers.map((p) => `${p.name}:${p.kind}`),
      },
      'keyhole listening',
    );
    this.logger.flush();
  }

  /** The one admin listener of the group: readiness, metrics, revocations and reloads for every worker. */
  private async listenAdmin(): Promise<AddressInfo> {
    const cfg = this.runtime.config;
    const hooks: AdminHooks = {
      accepting: () => !this.stopping && this.listeningCount > 0,
      reload: () => this.reload(),
      metrics: () => this.metrics(),
    };
    const admin = createServer(
      { maxHeaderSize: cfg.server.maxHeaderSize, headersTimeout: cfg.server.timeouts.headers, requestTimeout: cfg.server.timeouts.request, keepAliveTimeout: cfg.server.timeouts.keepAlive },
      (req, res) => {
        handleAdmin(this.runtime, hooks, req, res).catch((err: unknown) => {
          this.logger.error({ err }, 'admin request failed');
          if (!res.headersSent) sendError(res, 'internal', randomUUID());
          else res.destroy();
        });
      },
    );
    this.admin = admin;
    return new Promise<AddressInfo>((resolve, reject) => {
      admin.once('error', reject);
      admin.listen(cfg.admin.listen.port, cfg.admin.listen.host, () => resolve(admin.address() as AddressInfo));
    });
  }

  private fork(): void {
    const worker = cluster.fork();
    const member: Member = { worker, startedAt: Date.now(), hello: false, listening: false, leaving: false };
    this.members.set(worker.id, member);
    receiveFromWorker(worker, (m) => this.onMessage(member, m));
    worker.on('exit', (code, signal) => this.onExit(member, code, signal));
  }

  private onMessage(member: Member, m: FromWorker): void {
    switch (m.kh) {
      case 'hello': {
        member.hello = true;
        // The config the primary checked last, not the file now: a typo saved but not yet
        // reloaded must not stop a replacement worker from starting.
        const snapshot = this.relay?.snapshot() ?? { tokens: [], subjects: [], sessions: [] };
        sendToWorker(member.worker, { kh: 'start', yaml: this.yaml, ...snapshot });
        return;
      }
      case 'listening': {
        member.listening = true;
        this.dataAddress ??= m.data;
        this.redirectAddress ??= m.redirect;
        this.logger.info({ worker: member.worker.id, pid: member.worker.process.pid }, 'worker ready');
        if (!this.started && this.listeningCount >= this.desired) {
          this.started = true;
          this.startup.resolve();
        }
        return;
      }
      case 'ack':
        this.answers.answered(member.worker.id, m);
        return;
      case 'fatal': {
        this.logger.error({ worker: member.worker.id, problems: m.problems }, 'worker cannot start');
        return;
      }
      case 'logout': {
        // Memory mode only (with Redis a worker writes it there itself).
        const done = (error?: string) => sendToWorker(member.worker, { kh: 'logged-out', seq: m.seq, ...(error ? { error } : {}) });
        if (!this.relay) return void done('no relayed revocation store');
        this.relay.revokeSession(m.hash, m.until).then(
          () => done(),
          (err: unknown) => done((err as Error).message),
        );
        return;
      }
    }
  }

  private onExit(member: Member, code: number | null, signal: string | null): void {
    const id = member.worker.id;
    this.members.delete(id);
    this.answers.gone(id);
    if (this.stopping) {
      this.logger.info({ worker: id, pid: member.worker.process.pid, code, signal }, 'worker stopped');
      if (this.members.size === 0) this.stopped?.();
      return;
    }
    if (!this.started) {
      this.startup.reject(new Error(`worker ${id} exited during start-up (code ${code}, signal ${signal})`));
      return;
    }
    if (member.leaving) {
      this.logger.info({ worker: id, code, signal }, 'worker left (scaled down)');
      return;
    }
    const lived = Date.now() - member.startedAt;
    this.youngDeaths = lived < HEALTHY_LIFETIME_MS ? this.youngDeaths + 1 : 1;
    const delayMs = restartDelay(this.youngDeaths);
    this.logger.error({ worker: id, pid: member.worker.process.pid, code, signal, livedMs: lived, restartInMs: delayMs }, 'worker died; replacing it');
    setTimeout(() => {
      if (!this.stopping && this.members.size < this.desired) this.fork();
    }, delayMs);
  }

  /** Sends to every worker that can hear it and resolves with their answers (or at the timeout). */
  ask(make: (seq: number) => ToWorker, timeoutMs: number): Promise<Answers> {
    const deliver = (message: ToWorker) => [...this.members.values()].filter((m) => m.hello && sendToWorker(m.worker, message)).map((m) => m.worker.id);
    return this.answers.ask(make, deliver, timeoutMs);
  }

  /** Checks the file, then relays its text to every worker; one reload at a time. */
  readonly reload: () => Promise<ReloadResult> = oneAtATime(async () => {
    const result = await this.reloadGroup();
    this.runtime.metrics.configReloads.labels(result.ok ? 'ok' : 'refused').inc();
    return result;
  });

  private reloadGroup(): Promise<ReloadResult> {
    // The text the checks passed is what the workers get, and what a replacement starts from.
    let yaml = '';
    return reloadConfig({
      logger: this.logger,
      current: this.runtime,
      read: () => {
        const read = readConfig(this.file);
        yaml = read.yaml;
        return read.config;
      },
      cluster: true,
      revocationFixed: true,
      swap: (built) => this.swapTo(built, yaml),
    });
  }

  private async swapTo({ next, runtime, keepRevocation }: BuiltReload, yaml: string): Promise<SwapOutcome> {
    const previous = this.runtime;
    this.runtime = runtime;
    this.yaml = yaml;
    void previous.close({ keepRevocation });

    const { acks, missing } = await this.ask((seq) => ({ kh: 'reload', seq, yaml }), 60_000);
    const problems: string[] = [];
    for (const { worker, ack } of acks) {
      if (!ack.result?.ok) problems.push(...(ack.result?.problems ?? [ack.error ?? 'failed']).map((p) => `worker ${worker}: ${p}`));
    }
    for (const w of missing) problems.push(`worker ${w}: no answer to the reload`);
    const workers = Math.max(1, workerCount(next.workers));
    if (workers !== this.desired) this.resize(workers);
    return {
      problems,
      certificate: acks.find((a) => a.ack.result?.certificate)?.ack.result?.certificate,
      logged: { workers: acks.length, providers: next.providers.map((p) => `${p.name}:${p.kind}`) },
    };
  }

  private resize(count: number): void {
    this.logger.info({ from: this.desired, to: count }, 'changing the number of workers');
    this.desired = count;
    const live = [...this.members.values()].filter((m) => !m.leaving);
    for (let i = live.length; i < count; i++) this.fork();
    for (const m of live.slice(count)) {
      m.leaving = true;
      sendToWorker(m.worker, { kh: 'drain' });
    }
  }

  /** One /metrics for the group: every worker's registry, summed (gauges of health: the minimum). */
  private async metrics(): Promise<{ contentType: string; body: string }> {
    const { acks } = await this.ask((seq) => ({ kh: 'metrics', seq }), 3_000);
    const parts: MetricFamily[][] = acks.flatMap((a) => (a.ack.metrics ? [a.ack.metrics] : []));
    const own = await this.runtime.metrics.registry.getMetricsAsJSON();
    // The primary contributes what only it knows: the revocation store it relays through,
    // and the group's reloads (it runs them; the workers do not count theirs).
    parts.push(own.filter((m) => HEALTH_GAUGES.has(m.name) || PRIMARY_COUNTS.has(m.name)));
    // Health gauges combine as the worst of all (their aggregator is 'min'), the rest as a sum.
    return { contentType: PROMETHEUS_CONTENT_TYPE, body: render(aggregate(parts)) };
  }

  async stop(signal: string): Promise<void> {
    if (this.stopping) {
      this.logger.warn({ signal }, 'second signal during the drain: killing the workers now');
      for (const m of this.members.values()) m.worker.process.kill('SIGKILL');
      this.logger.flush();
      process.exit(1);
    }
    this.stopping = true;
    const drainMs = this.runtime.config.server.drainTimeout;
    this.logger.info({ signal, workers: this.members.size, drainTimeoutMs: drainMs }, 'draining');
    const allGone = new Promise<void>((resolve) => {
      this.stopped = resolve;
      if (this.members.size === 0) resolve();
    });
    for (const m of this.members.values()) sendToWorker(m.worker, { kh: 'drain' });
    // A worker that cannot finish its own drain in time is killed.
    const killer = setTimeout(() => {
      for (const m of this.members.values()) m.worker.process.kill('SIGKILL');
    }, drainMs + 5_000);
    await allGone;
    clearTimeout(killer);
    const admin = this.admin;
    if (admin) {
      await new Promise<void>((resolve) => {
        admin.close(() => resolve());
        admin.closeAllConnections();
      });
    }
    await this.runtime.close();
    this.logger.info('drained');
    this.logger.flush();
  }
}

/** Runs the primary: its runtime (revocations and metrics for the group), the workers, the signals. */
export async function runPrimary(file: string, yaml: string, config: Config, logger: Logger, count: number): Promise<void> {
  let primary: Primary | undefined;
  const relay =
    config.revocation.store === 'memory'
      ? new RelayedRevocationStore(Math.ceil(config.auth.maxTokenLifetime / 1000) + config.auth.clockTolerance, (r) => fanOut(r, (make, ms) => primary!.ask(make, ms), logger))
      : undefined;
  const runtime = await createRuntime(config, { logger, ...(relay ? { revocation: relay } : {}) });
  primary = new Primary(file, yaml, runtime, relay, logger, count);
  const p = primary;
  // Signals first: a SIGTERM during start-up still drains what has started.
  process.on('SIGHUP', () => void p.reload());
  const stop = (signal: string) =>
    void p.stop(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'drain failed');
        process.exit(1);
      },
    );
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await p.start();
  } catch (err) {
    logger.fatal({ problem: (err as Error).message }, 'keyhole could not start its workers');
    logger.flush();
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
    process.exit(1);
  }
}
