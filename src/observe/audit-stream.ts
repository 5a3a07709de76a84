// Audit events to a Redis stream (XADD key MAXLEN ~ N * field value …), for a SIEM or the
// labeling app to consume with XREAD. The data path never waits for Redis: `push` only
// appends to a bounded in-process buffer; a background loop writes batches in one pipeline.
// While Redis is slow or away the buffer fills, and past its bound new events are dropped
// and counted (keyhole_audit_stream_dropped_total). The log keeps every event regardless.
import type { Logger } from 'pino';
import type { AuditEvent, AuditSink } from './audit.ts';
import type { AuditCheckpoint } from './audit-chain.ts';
import type { Metrics } from './metrics.ts';
import type { AuditStreamConfig, RedisConnectionConfig } from '../redis/schema.ts';
import { createRedisClient, explainRedisError, isUp, preflightRedis, type RedisClient } from '../redis/connect.ts';

/** Flat field/value pairs: every value a string, absent ones left out. */
export function streamFields(event: AuditEvent): string[] {
  const out: string[] = ['ts', new Date().toISOString()];
  for (const [k, v] of Object.entries(event)) {
    if (v === undefined || v === null) continue;
    out.push(k, typeof v === 'string' ? v : JSON.stringify(v));
  }
  return out;
}

/**
 * A checkpoint of the audit log's chain as a stream entry (`kind` audit-checkpoint): compared
 * with the log's own, it shows a log cut or rewritten after the checkpoint reached Redis.
 */
export function checkpointFields(cp: AuditCheckpoint): string[] {
  const out = ['ts', new Date().toISOString(), 'kind', 'audit-checkpoint', 'stream', cp.stream, 'seq', String(cp.seq), 'prev', cp.prev, 'time', cp.time, 'final', String(cp.final)];
  if (cp.kid !== undefined && cp.sig !== undefined) out.push('kid', cp.kid, 'sig', cp.sig);
  return out;
}

export class AuditStream implements AuditSink {
  private readonly buffer: string[][] = [];
  private readonly closing: (() => void)[] = [];
  private readonly client: RedisClient;
  private writing = false;
  /** the batch being written (close waits for it) */
  private draining: Promise<void> | undefined;
  private closed = false;
  private lastProblem: string | undefined;

  /** Refuses a TLS/certificate problem up front, like the revocation store does. */
  static async open(connection: RedisConnectionConfig, cfg: AuditStreamConfig, metrics: Metrics, logger: Logger): Promise<AuditStream> {
    const { unreachable } = await preflightRedis(connection, 'redis (audit stream)');
    if (unreachable.length > 0) logger.warn({ unreachable }, 'redis is unreachable at start-up: audit events are buffered, then dropped');
    return new AuditStream(connection, cfg, metrics, logger);
  }

  private readonly cfg: AuditStreamConfig;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  constructor(
    connection: RedisConnectionConfig,
    cfg: AuditStreamConfig,
    metrics: Metrics,
    logger: Logger,
  ) {
    this.cfg = cfg;
    this.metrics = metrics;
    this.logger = logger;
    this.client = createRedisClient(connection, { name: 'keyhole-audit' });
    this.client.on('error', (err: unknown) => this.problem(err));
    this.client.on('ready', () => this.kick());
  }

  private problem(err: unknown): void {
    const why = explainRedisError(err);
    if (why !== this.lastProblem) this.logger.warn({ problem: why, buffered: this.buffer.length }, 'audit stream: redis problem');
    this.lastProblem = why;
  }

  /** Never blocks and never throws: buffer, or drop and count. */
  push(event: AuditEvent): void {
    this.add(streamFields(event));
  }

  /** An alert: an entry of `kind` alert, its fields flat like an event's. */
  alert(alert: object): void {
    const out: string[] = ['ts', new Date().toISOString(), 'kind', 'alert'];
    for (const [k, v] of Object.entries(alert)) if (v !== undefined && v !== null) out.push(k, typeof v === 'string' ? v : JSON.stringify(v));
    this.add(out);
  }

  /** A checkpoint goes the same way as the events, in order with them. */
  checkpoint(cp: AuditCheckpoint): void {
    this.add(checkpointFields(cp));
  }

  onClosing(fn: () => void): void {
    this.closing.push(fn);
  }

  private add(fields: string[]): void {
    if (this.closed) return;
    if (this.buffer.length >= this.cfg.buffer) {
      this.metrics.auditStreamDropped.inc();
      return;
    }
    this.buffer.push(fields);
    this.kick();
  }

  /** Events waiting in memory (tests, diagnostics). */
  get pending(): number {
    return this.buffer.length;
  }

  private idleWaiters: (() => void)[] = [];

  /** Resolves once every buffered event has been written (waits across a Redis outage). */
  idle(): Promise<void> {
    if (this.buffer.length === 0 && !this.writing) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private settleIdle(): void {
    if (this.buffer.length > 0 || this.writing) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private kick(): void {
    if (this.writing || this.buffer.length === 0 || !isUp(this.client)) return;
    this.writing = true;
    // Next turn of the event loop: events of the same tick go out in one pipeline.
    this.draining = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.drain());
  }

  private async drain(): Promise<void> {
    try {
      while (this.buffer.length > 0 && isUp(this.client)) {
        const batch = this.buffer.splice(0, this.cfg.batch);
        const pipeline = this.client.pipeline();
        for (const fields of batch) pipeline.xadd(this.cfg.key, 'MAXLEN', '~', String(this.cfg.maxLen), '*', ...fields);
        let results: [Error | null, unknown][] | null;
        try {
          results = await pipeline.exec();
        } catch (err) {
          results = batch.map(() => [err as Error, null]);
        }
        const failed = batch.filter((_, i) => results?.[i]?.[0] != null);
        this.metrics.auditStreamWritten.inc(batch.length - failed.length);
        if (failed.length > 0) {
          this.problem(results?.find((r) => r[0] != null)?.[0]);
          // Back to the front, oldest first, as far as the bound allows; the rest is dropped.
          const room = Math.max(0, this.cfg.buffer - this.buffer.length);
          this.buffer.unshift(...failed.slice(0, room));
          if (failed.length > room) this.metrics.auditStreamDropped.inc(failed.length - room);
          break; // wait for the next `ready`
        }
      }
    } finally {
      this.writing = false;
      this.settleIdle();
    }
    // A command failed while the connection still looks up (e.g. OOM): retry later, not in a loop.
    if (this.buffer.length > 0 && isUp(this.client) && !this.closed) setTimeout(() => this.kick(), 1000).unref();
  }

  /** Writes what is buffered if Redis answers within its command timeout, then disconnects. */
  async close(): Promise<void> {
    if (this.closed) return;
    // The audit log's checkpoint of what this stream got, written with the rest.
    for (const fn of this.closing.splice(0)) fn();
    this.closed = true;
    // A batch already on its way (events of this very tick included) is written first.
    await this.draining;
    if (this.buffer.length > 0 && isUp(this.client) && !this.writing) {
      this.writing = true;
      await this.drain();
    }
    this.client.disconnect();
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
