// Alerts POSTed to a webhook. The data path only ever appends to a bounded queue (`send` never
// waits and never throws); two POSTs at most are in flight, each given `timeout` to be
// answered. A webhook that is dead, slow or refusing costs the alert for the webhook, never a
// data answer: past the queue's bound new alerts are dropped and counted. The audit log has
// every alert regardless.
import type { Dispatcher, Pool } from 'undici';
import type { Logger } from 'pino';
import { createPool } from '../relay/pool.ts';
import type { LimitAlert } from './alerts.ts';
import type { WebhookConfig } from './schema.ts';

const IN_FLIGHT = 2;

export type WebhookResult = 'sent' | 'failed' | 'timeout' | 'dropped';

export interface WebhookOptions {
  logger: Logger;
  /** counts every alert's fate */
  count(result: WebhookResult): void;
}

/** One POST through undici's dispatch API: resolves with the status, or rejects. */
class Post implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private status = 0;
  private settled = false;
  private readonly timer: NodeJS.Timeout;

  private readonly done: (status: number, err?: Error) => void;
  constructor(
    timeoutMs: number,
    done: (status: number, err?: Error) => void,
  ) {
    this.done = done;
    this.timer = setTimeout(() => this.finish(0, new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  }

  private finish(status: number, err?: Error): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    if (err) this.controller?.abort(err);
    this.done(status, err);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled) controller.abort(new Error('timed out'));
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
  }

  onResponseData(): void {}

  onResponseEnd(): void {
    if (this.status >= 200) this.finish(this.status);
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.finish(0, err);
  }
}

export class WebhookSender {
  private readonly queue: string[] = [];
  private readonly pool: Pool;
  private readonly path: string;
  private readonly headers: Record<string, string>;
  private inFlight = 0;
  private closed = false;
  private lastProblem: string | undefined;
  private idleWaiters: (() => void)[] = [];

  private readonly cfg: WebhookConfig;
  private readonly opts: WebhookOptions;
  constructor(
    cfg: WebhookConfig,
    opts: WebhookOptions,
  ) {
    this.cfg = cfg;
    this.opts = opts;
    const url = new URL(cfg.url);
    this.path = url.pathname + url.search;
    this.pool = createPool(url.origin, { connections: IN_FLIGHT, connectTimeoutMs: cfg.timeout, headersTimeoutMs: cfg.timeout, bodyTimeoutMs: cfg.timeout, tls: cfg.tls });
    this.headers = { 'content-type': 'application/json', 'user-agent': 'keyhole-alerts' };
    for (const [name, value] of Object.entries(cfg.headers ?? {})) this.headers[name.toLowerCase()] = value.reveal();
  }

  /** Never waits, never throws: queued, or dropped and counted. */
  send(alert: LimitAlert): void {
    if (this.closed) return;
    if (this.queue.length >= this.cfg.queue) {
      this.opts.count('dropped');
      return;
    }
    this.queue.push(JSON.stringify({ kind: 'alert', ...alert }));
    this.kick();
  }

  /** Alerts waiting to be sent (tests). */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  /** Resolves once nothing is queued or in flight (tests). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private kick(): void {
    while (this.inFlight < IN_FLIGHT && this.queue.length > 0 && !this.closed) {
      const body = this.queue.shift()!;
      this.inFlight++;
      this.post(body);
    }
    if (this.pending === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private post(body: string): void {
    const handler = new Post(this.cfg.timeout, (status, err) => {
      this.inFlight--;
      if (status >= 200 && status < 300) this.opts.count('sent');
      else {
        const timedOut = err !== undefined && /within|timeout/i.test(err.message + (err as { code?: string }).code);
        this.opts.count(timedOut ? 'timeout' : 'failed');
        const problem = err ? err.message : `status ${status}`;
        if (problem !== this.lastProblem) this.opts.logger.warn({ problem }, 'alert webhook failed: the alert is in the audit log only');
        this.lastProblem = problem;
      }
      if (status >= 200 && status < 300) this.lastProblem = undefined;
      this.kick();
    });
    try {
      this.pool.dispatch({ path: this.path, method: 'POST', headers: { ...this.headers, 'content-length': String(Buffer.byteLength(body)) }, body, blocking: false }, handler);
    } catch (err) {
      handler.onResponseError(undefined as never, err as Error);
    }
  }

  /** Stops sending; what is still queued is dropped (the audit log has it). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (let i = 0; i < this.queue.length; i++) this.opts.count('dropped');
    this.queue.length = 0;
    await this.pool.destroy().catch(() => undefined);
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
