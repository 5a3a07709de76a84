// What a cluster primary and its workers say to each other over the node:cluster channel:
// the messages, sending them without throwing at a process that is gone, the primary's
// sends that wait for every worker's answer, and a worker's inbox.
import type { Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import type { MetricFamily } from '../observe/exposition.ts';
import type { ReloadResult } from './reload.ts';

/** One revocation as the primary relays it to every worker. */
export type Relayed = { jti: string; until: number } | { sub: string; at: number } | { session: string; until: number };

/** Every revocation in force, for a worker that starts: [jti, until], [sub, at], [session hash, until]. */
export interface RevocationSnapshot {
  tokens: [string, number][];
  subjects: [string, number][];
  sessions: [string, number][];
}

/** Primary → worker. */
export type ToWorker =
  | ({ kh: 'start'; yaml: string } & RevocationSnapshot)
  | ({ kh: 'revoke'; seq: number } & Relayed)
  /** the answer to a worker's `logout`: every live worker holds it (or why not) */
  | { kh: 'logged-out'; seq: number; error?: string }
  | { kh: 'reload'; seq: number; yaml: string }
  | { kh: 'metrics'; seq: number }
  | { kh: 'drain' };

export type Ack = { kh: 'ack'; seq: number; result?: ReloadResult; metrics?: MetricFamily[]; error?: string };

/** Worker → primary. */
export type FromWorker =
  | { kh: 'hello' }
  | { kh: 'listening'; data: AddressInfo; redirect?: AddressInfo }
  | Ack
  | { kh: 'fatal'; problems: string[] }
  /** memory mode: an app session logged out through this worker, for the whole group */
  | { kh: 'logout'; seq: number; hash: string; until: number };

/** Ours (every message carries a `kh` kind), not something else on the channel. */
const isMessage = (m: unknown): boolean => typeof m === 'object' && m !== null && typeof (m as { kh?: unknown }).kh === 'string';

/** Hands a worker's messages to `on`. */
export function receiveFromWorker(worker: Worker, on: (m: FromWorker) => void): void {
  worker.on('message', (m: unknown) => {
    if (isMessage(m)) on(m as FromWorker);
  });
}

/** false when the worker cannot hear it (gone, or going). */
export function sendToWorker(worker: Worker, message: ToWorker): boolean {
  if (!worker.isConnected()) return false;
  try {
    return worker.send(message);
  } catch {
    return false;
  }
}

export function sendToPrimary(message: FromWorker): void {
  try {
    process.send?.(message);
  } catch {
    // The primary is gone; 'disconnect' drains this worker.
  }
}

/** The answers to one message sent to every worker: who answered what, who did not answer. */
export interface Answers {
  acks: { worker: number; ack: Ack }[];
  missing: number[];
}

interface Pending {
  waiting: Set<number>;
  acks: Answers['acks'];
  done: () => void;
}

/** The primary's messages that every worker answers, matched to their answers by `seq`. */
export class AnswerCollector {
  private seq = 0;
  private readonly pending = new Map<number, Pending>();

  /**
   * `deliver` sends the message and says which workers got it; resolves with their
   * answers once all of them answered (or exited), or at the timeout.
   */
  ask(make: (seq: number) => ToWorker, deliver: (message: ToWorker) => number[], timeoutMs: number): Promise<Answers> {
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
      for (const id of deliver(message)) p.waiting.add(id);
      const timer = setTimeout(() => p.done(), timeoutMs);
      if (p.waiting.size === 0) p.done();
    });
  }

  answered(worker: number, ack: Ack): void {
    const p = this.pending.get(ack.seq);
    if (!p || !p.waiting.delete(worker)) return;
    p.acks.push({ worker, ack });
    if (p.waiting.size === 0) p.done();
  }

  /** A worker exited: whatever waited on its answer no longer does (its replacement starts fresh). */
  gone(worker: number): void {
    for (const p of this.pending.values()) if (p.waiting.delete(worker) && p.waiting.size === 0) p.done();
  }
}

/**
 * A worker's inbox: the `start` message (the config and every revocation so far) first;
 * every other message is held until the worker hands over its handler, then delivered in order.
 */
export function primaryInbox(): { started: Promise<Extract<ToWorker, { kh: 'start' }>>; handle(on: (m: ToWorker) => void): void } {
  const queued: ToWorker[] = [];
  let deliver: ((m: ToWorker) => void) | undefined;
  const started = new Promise<Extract<ToWorker, { kh: 'start' }>>((resolveStart) => {
    process.on('message', (m: unknown) => {
      if (!isMessage(m)) return;
      const message = m as ToWorker;
      if (message.kh === 'start') resolveStart(message);
      else if (deliver) deliver(message);
      else queued.push(message);
    });
  });
  return {
    started,
    handle(on) {
      deliver = on;
      for (const m of queued.splice(0)) on(m);
    },
  };
}
