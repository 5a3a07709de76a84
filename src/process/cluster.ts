// `workers: N | auto`: a node:cluster primary and N workers sharing the data listeners.
//
// The primary serves no data. It owns the admin listener (one /readyz, one /metrics and
// one place to revoke or reload for the whole group), supervises the workers (a worker
// that dies is replaced, with backoff when it keeps dying), and relays admin actions to
// every worker over IPC: reloads always, revocations when the store is in memory (with
// Redis, every worker's own store hears the revocation over pub/sub). A new worker gets
// every revocation made so far before it starts listening.
import cluster, { type Worker } from 'node:cluster';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { randomUUID } from 'node:crypto';
import { aggregate, render, PROMETHEUS_CONTENT_TYPE, type MetricFamily } from '../observe/exposition.js';
import type { Logger } from 'pino';
import { MemoryRevocationStore, RevocationUnavailable } from '../auth/revocation.js';
import { ConfigError, formatProblem, parseConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { handleAdmin, type AdminHooks } from '../server/admin.js';
import { createServeLogger, drainThenExit, KeyholeInstance, revocationSettings, restartOnlyChanges, type ReloadResult } from './instance.js';
import { sendError } from '../http/answer.js';
import { createRuntime, type Runtime } from '../server/runtime.js';
import { readServerTls } from '../tls/server.js';

type MetricsJson = MetricFamily[];

/** Primary → worker. */
export type ToWorker =
  | { kh: 'start'; yaml: string; tokens: [string, number][]; subjects: [string, number][]; sessions: [string, number][] }
  | { kh: 'revoke'; seq: number; jti: string; until: number }
  | { kh: 'revoke'; seq: number; sub: string; at: number }
  | { kh: 'revoke'; seq: number; session: string; until: number }
  /** the answer to a worker's `logout`: every live worker holds it (or why not) */
  | { kh: 'logged-out'; seq: number; error?: string }
  | { kh: 'reload'; seq: number; yaml: string }
  | { kh: 'metrics'; seq: number }
  | { kh: 'drain' };

/** Worker → primary. */
export type FromWorker =
  | { kh: 'hello' }
  | { kh: 'listening'; data: AddressInfo; redirect?: AddressInfo }
  | { kh: 'ack'; seq: number; result?: ReloadResult; metrics?: MetricsJson; error?: string }
  | { kh: 'fatal'; problems: string[] }
  /** memory mode: an app session logged out through this worker, for the whole group */
  | { kh: 'logout'; seq: number; hash: string; until: number };

const isFromWorker = (m: unknown): m is FromWorker => typeof m === 'object' && m !== null && typeof (m as { kh?: unknown }).kh === 'string';

// ---------------------------------------------------------------------------------------
// Revocations in memory, for a group of processes

/**
 * The primary's revocation store in memory mode: remembers every revocation (so a new
 * worker can be given all of them) and resolves only once every live worker applied it,
 * so "200 revoked" means no worker will serve that token again.
 */
export class RelayedRevocationStore extends MemoryRevocationStore {
  constructor(
    subjectTtlSeconds: number,
    private readonly relay: (m: Relayed) => Promise<void>,
  ) {
    super(subjectTtlSeconds);
  }

  override async revokeToken(jti: string, expiresAt: number): Promise<void> {
    await super.revokeToken(jti, expiresAt);
    // What the store keeps (never less than its horizon), not what the caller asked.
    await this.relay({ jti, until: this.tokens.get(jti)! });
  }

  override async revokeSubject(sub: string, at: number): Promise<void> {
    await super.revokeSubject(sub, at);
    await this.relay({ sub, at: this.subjects.get(sub)! });
  }

  override async revokeSession(hash: string, until: number): Promise<void> {
    this.holdSession(hash, until);
    await this.relay({ session: hash, until: this.sessions.get(hash)! });
  }

  snapshot(): { tokens: [string, number][]; subjects: [string, number][]; sessions: [string, number][] } {
    this.sweep();
    return { tokens: [...this.tokens], subjects: [...this.subjects], sessions: [...this.sessions] };
  }
}

/** One revocation as the primary relays it to every worker. */
type Relayed = { jti: string; until: number } | { sub: string; at: number } | { session: string; until: number };

// ---------------------------------------------------------------------------------------
// Primary

interface Member {
  worker: Worker;
  startedAt: number;
  hello: boolean;
  listening: boolean;
  /** asked to leave (scale down): do not replace it */
  leaving: boolean;
}

interface Pending {
  waiting: Set<number>;
  acks: { worker: number; ack: Extract<FromWorker, { kh: 'ack' }> }[];
  done: () => void;
}

/** Exponential backoff for a worker that keeps dying young: 100 ms, 200 ms, … 10 s. */
export function restartDelay(youngDeaths: number): number {
  return Math.min(100 * 2 ** Math.max(0, youngDeaths - 1), 10_000);
}

/** 1 = healthy gauges: a group is as healthy as its worst member. */
const HEALTH_GAUGES = new Set(['keyhole_revocation_store_up', 'keyhole_redis_up']);

/** A worker that lived this long before dying is not in a crash loop. */
const HEALTHY_LIFETIME_MS = 10_000;

class Primary {
  private readonly members = new Map<number, Member>();
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private desired: number;
  private youngDeaths = 0;
  private started = false;
  private stopping = false;
  private dataAddress: AddressInfo | undefined;
  private redirectAddress: AddressInfo | undefined;
  private admin: Server | undefined;
  private reloading: Promise<unknown> = Promise.resolve();
  private readonly startup: { resolve: () => void; reject: (err: Error) => void; promise: Promise<void> };
  private stopped: (() => void) | undefined;

  constructor(
    private readonly file: string,
    /** the YAML text of the config in force: what workers (re)start from */
    private yaml: string,
    private runtime: Runtime,
    private readonly relay: RelayedRevocationStore | undefined,
    private readonly logger: Logger,
    count: number,
  ) {
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
    const hooks: AdminHooks = {
      accepting: () => !this.stopping && this.listeningCount > 0,
      reload: () => this.reload(),
      metrics: () => this.metrics(),
    };
    this.admin = createServer(
      { maxHeaderSize: cfg.server.maxHeaderSize, headersTimeout: cfg.server.timeouts.headers, requestTimeout: cfg.server.timeouts.request, keepAliveTimeout: cfg.server.timeouts.keepAlive },
      (req, res) => {
        handleAdmin(this.runtime, hooks, req, res).catch((err: unknown) => {
          this.logger.error({ err }, 'admin request failed');
          if (!res.headersSent) sendError(res, 'internal', randomUUID());
          else res.destroy();
        });
      },
    );
    const admin = await new Promise<AddressInfo>((resolve, reject) => {
      this.admin!.once('error', reject);
      this.admin!.listen(cfg.admin.listen.port, cfg.admin.listen.host, () => resolve(this.admin!.address() as AddressInfo));
    });
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

  private fork(): void {
    const worker = cluster.fork();
    const member: Member = { worker, startedAt: Date.now(), hello: false, listening: false, leaving: false };
    this.members.set(worker.id, member);
    worker.on('message', (m: unknown) => {
      if (isFromWorker(m)) this.onMessage(member, m);
    });
    worker.on('exit', (code, signal) => this.onExit(member, code, signal));
  }

  private send(member: Member, message: ToWorker): boolean {
    if (!member.worker.isConnected()) return false;
    try {
      return member.worker.send(message);
    } catch {
      return false;
    }
  }

  private onMessage(member: Member, m: FromWorker): void {
    switch (m.kh) {
      case 'hello': {
        member.hello = true;
        // The config the primary checked last, not the file now: a typo saved but not yet
        // reloaded must not stop a replacement worker from starting.
        const snapshot = this.relay?.snapshot() ?? { tokens: [], subjects: [], sessions: [] };
        this.send(member, { kh: 'start', yaml: this.yaml, ...snapshot });
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
      case 'ack': {
        const p = this.pending.get(m.seq);
        if (!p || !p.waiting.delete(member.worker.id)) return;
        p.acks.push({ worker: member.worker.id, ack: m });
        if (p.waiting.size === 0) p.done();
        return;
      }
      case 'fatal': {
        this.logger.error({ worker: member.worker.id, problems: m.problems }, 'worker cannot start');
        return;
      }
      case 'logout': {
        // Memory mode only (with Redis a worker writes it there itself).
        const done = (error?: string) => this.send(member, { kh: 'logged-out', seq: m.seq, ...(error ? { error } : {}) });
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
    // Whatever waited on this worker's answer no longer does: its replacement starts fresh.
    for (const p of this.pending.values()) if (p.waiting.delete(id) && p.waiting.size === 0) p.done();
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
  private broadcast(make: (seq: number) => ToWorker, timeoutMs: number): Promise<{ acks: Pending['acks']; missing: number[] }> {
    const seq = ++this.seq;
    const message = make(seq);
    return new Promise((resolve) => {
      const p: Pending = {
        waiting: new Set(),
        acks: [],
        done: () => {
          clearTimeout(timer);
          this.pending.delete(seq);
          resolve({ acks: p.acks, missing: [...p.waiting] });
        },
      };
      this.pending.set(seq, p);
      for (const m of this.members.values()) if (m.hello && this.send(m, message)) p.waiting.add(m.worker.id);
      const timer = setTimeout(() => p.done(), timeoutMs);
      if (p.waiting.size === 0) p.done();
    });
  }

  /** Memory mode: a revocation is done when every live worker applied it. */
  async relayRevocation(r: Relayed): Promise<void> {
    const { acks, missing } = await this.broadcast((seq) => ({ kh: 'revoke', seq, ...r }), 5_000);
    const failed = acks.filter((a) => a.ack.error);
    if (missing.length > 0 || failed.length > 0) {
      this.logger.error({ missing, failed: failed.map((a) => a.worker) }, 'revocation did not reach every worker');
      throw new RevocationUnavailable('revocation did not reach every worker');
    }
  }

  reload(): Promise<ReloadResult> {
    const run = this.reloading.then(() => this.reloadNow());
    this.reloading = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(): Promise<ReloadResult> {
    const refuse = (problems: string[]): ReloadResult => {
      this.logger.error({ problems }, 'reload refused: the running configuration stays');
      return { ok: false, problems };
    };
    let next: Config;
    let yaml: string;
    try {
      yaml = readConfigText(this.file);
      next = parseConfig(yaml, { baseDir: dirname(resolve(this.file)) });
    } catch (err) {
      return refuse(err instanceof ConfigError ? err.problems.map(formatProblem) : [String((err as Error).message)]);
    }
    const current = this.runtime;
    const { refuse: blockers, warn } = restartOnlyChanges(current.config, next, { cluster: true });
    if (revocationSettings(current.config) !== revocationSettings(next)) {
      blockers.push('revocation: the store cannot change by a reload while workers run; restart Keyhole');
    }
    if (blockers.length > 0) return refuse(blockers);
    if (next.server.tls) {
      try {
        readServerTls(next.server.tls);
      } catch (err) {
        return refuse([(err as Error).message]);
      }
    }
    let runtime: Runtime;
    try {
      runtime = await createRuntime(next, { logger: this.logger, metrics: current.metrics, revocation: current.revocation });
    } catch (err) {
      return refuse([`runtime: ${(err as Error).message}`]);
    }
    this.runtime = runtime;
    this.yaml = yaml;
    void current.close({ keepRevocation: true });

    const { acks, missing } = await this.broadcast((seq) => ({ kh: 'reload', seq, yaml }), 60_000);
    const problems: string[] = [];
    for (const { worker, ack } of acks) {
      if (!ack.result?.ok) problems.push(...(ack.result?.problems ?? [ack.error ?? 'failed']).map((p) => `worker ${worker}: ${p}`));
    }
    for (const w of missing) problems.push(`worker ${w}: no answer to the reload`);
    const workers = Math.max(1, workerCount(next.workers));
    if (workers !== this.desired) this.resize(workers);
    for (const w of warn) this.logger.warn(w);
    const certificate = acks.find((a) => a.ack.result?.certificate)?.ack.result?.certificate;
    if (problems.length > 0) {
      this.logger.error({ problems }, 'reload incomplete: some workers kept their configuration');
      return { ok: false, problems };
    }
    this.logger.info({ workers: acks.length, providers: next.providers.map((p) => `${p.name}:${p.kind}`) }, 'configuration reloaded');
    return { ok: true, ...(warn.length ? { warnings: warn } : {}), ...(certificate ? { certificate } : {}) };
  }

  private resize(count: number): void {
    this.logger.info({ from: this.desired, to: count }, 'changing the number of workers');
    this.desired = count;
    const live = [...this.members.values()].filter((m) => !m.leaving);
    for (let i = live.length; i < count; i++) this.fork();
    for (const m of live.slice(count)) {
      m.leaving = true;
      this.send(m, { kh: 'drain' });
    }
  }

  /** One /metrics for the group: every worker's registry, summed (gauges of health: the minimum). */
  private async metrics(): Promise<{ contentType: string; body: string }> {
    const { acks } = await this.broadcast((seq) => ({ kh: 'metrics', seq }), 3_000);
    const parts: MetricsJson[] = acks.flatMap((a) => (a.ack.metrics ? [a.ack.metrics] : []));
    const own = await this.runtime.metrics.registry.getMetricsAsJSON();
    // The primary contributes what only it knows: the revocation store it relays through.
    parts.push(own.filter((m) => HEALTH_GAUGES.has(m.name)));
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
    for (const m of this.members.values()) this.send(m, { kh: 'drain' });
    // A worker that cannot finish its own drain in time is killed.
    const killer = setTimeout(() => {
      for (const m of this.members.values()) m.worker.process.kill('SIGKILL');
    }, drainMs + 5_000);
    await allGone;
    clearTimeout(killer);
    if (this.admin) {
      await new Promise<void>((resolve) => {
        this.admin!.close(() => resolve());
        this.admin!.closeAllConnections();
      });
    }
    await this.runtime.close();
    this.logger.info('drained');
    this.logger.flush();
  }
}

/** `auto` → one per core. */
export function workerCount(setting: Config['workers']): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

/** The config file's text, with the same error a load would give when it cannot be read. */
function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }]);
  }
}

export async function runPrimary(file: string, yaml: string, config: Config, logger: Logger, count: number): Promise<void> {
  let primary: Primary | undefined;
  const relay =
    config.revocation.store === 'memory'
      ? new RelayedRevocationStore(Math.ceil(config.auth.maxTokenLifetime / 1000) + config.auth.clockTolerance, (r) => primary!.relayRevocation(r))
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

// ---------------------------------------------------------------------------------------
// Worker

export async function runWorker(file: string): Promise<void> {
  const send = (m: FromWorker) => {
    try {
      process.send?.(m);
    } catch {
      // The primary is gone; 'disconnect' drains this worker.
    }
  };
  // Everything from the primary first: the config text it checked, and every revocation.
  const queued: ToWorker[] = [];
  let deliver: ((m: ToWorker) => void) | undefined;
  const started = new Promise<Extract<ToWorker, { kh: 'start' }>>((resolveStart) => {
    process.on('message', (m: ToWorker | { kh?: undefined }) => {
      if (typeof m !== 'object' || m === null || !m.kh) return;
      const message = m as ToWorker;
      if (message.kh === 'start') resolveStart(message);
      else if (deliver) deliver(message);
      else queued.push(message);
    });
  });
  send({ kh: 'hello' });
  const start = await started;
  // Logouts this worker asked the primary to relay, by seq; the primary answers each.
  const logouts = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  let logoutSeq = 0;
  const askPrimary = (m: Extract<FromWorker, { kh: 'logout' }>): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        logouts.delete(m.seq);
        reject(new RevocationUnavailable('the primary did not confirm the logout'));
      }, 10_000);
      logouts.set(m.seq, {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (err) => (clearTimeout(timer), reject(err)),
      });
      if (!process.connected || !process.send) {
        logouts.delete(m.seq);
        clearTimeout(timer);
        reject(new RevocationUnavailable('the primary is gone'));
        return;
      }
      process.send(m);
    });

  const baseDir = dirname(resolve(file));
  let yaml = start.yaml;
  let config: Config;
  try {
    config = parseConfig(yaml, { baseDir });
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems.map(formatProblem) : [String((err as Error).message)];
    send({ kh: 'fatal', problems });
    process.exit(2);
  }
  const logger = createServeLogger(config.log.level, { shared: true }).child({ worker: cluster.worker?.id });
  const instance = await KeyholeInstance.create(config, { configFile: file, loadConfig: () => parseConfig(yaml, { baseDir }), logger, cluster: true });
  for (const [jti, until] of start.tokens) await instance.runtime.revocation.revokeToken(jti, until);
  for (const [sub, at] of start.subjects) await instance.runtime.revocation.revokeSubject(sub, at);
  const own = instance.runtime.revocation;
  if (own instanceof MemoryRevocationStore) {
    for (const [hash, until] of start.sessions) own.holdSession(hash, until);
    // A logout through this worker holds on every worker before the app sees it.
    own.shareSession = (hash, until) => askPrimary({ kh: 'logout', seq: ++logoutSeq, hash, until });
  }

  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ why }, 'stop requested');
    drainThenExit(instance, logger);
  };

  const onMessage = async (m: ToWorker): Promise<void> => {
    const store = instance.runtime.revocation;
    switch (m.kh) {
      case 'logged-out': {
        const waiting = logouts.get(m.seq);
        logouts.delete(m.seq);
        if (m.error) waiting?.reject(new RevocationUnavailable(m.error));
        else waiting?.resolve();
        return;
      }
      case 'revoke':
        try {
          if ('jti' in m) await store.revokeToken(m.jti, m.until);
          else if ('session' in m) {
            // Held here only: sharing it again would loop through the primary.
            if (store instanceof MemoryRevocationStore) store.holdSession(m.session, m.until);
            else await store.revokeSession(m.session, m.until);
          } else await store.revokeSubject(m.sub, m.at);
          send({ kh: 'ack', seq: m.seq });
        } catch (err) {
          send({ kh: 'ack', seq: m.seq, error: (err as Error).message });
        }
        return;
      case 'reload': {
        yaml = m.yaml;
        const result = await instance.reload();
        if (!result.ok) instance.rotateCertificate('reload');
        send({ kh: 'ack', seq: m.seq, result });
        return;
      }
      case 'metrics':
        send({ kh: 'ack', seq: m.seq, metrics: await instance.runtime.metrics.registry.getMetricsAsJSON() });
        return;
      case 'drain':
        stop('primary asked');
        return;
      case 'start':
        return;
    }
  };
  deliver = (m) => void onMessage(m);
  for (const m of queued.splice(0)) deliver(m);

  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // The primary relays reloads; a SIGHUP sent to a worker alone re-applies what it has.
  process.on('SIGHUP', () => void instance.reload());
  process.on('disconnect', () => stop('primary gone'));

  const where = await instance.listenData();
  send({ kh: 'listening', data: where.data, ...(where.redirect ? { redirect: where.redirect } : {}) });
  logger.info({ pid: process.pid, data: where.data }, 'worker listening');
}
