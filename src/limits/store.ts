// Where limit counters live: the operations both stores run, and the memory store.
//
// Every change is one of these operations, applied atomically on the store's side (in Redis
// by one Lua script, redis-store.ts; here in one synchronous call): never read, decide, write.
// A batch of operations returns one result per operation (two for `set`), in order.
//
//   add   key delta expireAt          → the counter's new total (delta 0: a read, creating nothing)
//   set   key expireAt members…       → the set's size, then how many members were new
//   has   key member                  → 1 when the member is in the set
//   take  key periodMs burst want     → tokens granted (1…want) from a GCRA bucket, or −(ms to wait)
//   give  key periodMs n              → gives n unused tokens back
//   slot  key max ttlMs member        → 1 when a concurrency slot was free (and is now member's)
//   free  key members…                → releases slots
//   touch key ttlMs members…          → keeps slots alive (a holder that dies frees them after ttl)
//
// Times inside the store are the store's own clock (Redis TIME), so replicas with skewed
// clocks share one rate bucket; window starts (in the key names) are the replica's clock.

export type Op =
  | { op: 'add'; key: string; delta: number; expireAt: number }
  | { op: 'set'; key: string; expireAt: number; members: readonly string[] }
  | { op: 'has'; key: string; member: string }
  | { op: 'take'; key: string; periodMs: number; burst: number; want: number }
  | { op: 'give'; key: string; periodMs: number; n: number }
  | { op: 'slot'; key: string; max: number; ttlMs: number; member: string }
  | { op: 'free'; key: string; members: readonly string[] }
  | { op: 'touch'; key: string; ttlMs: number; members: readonly string[] };

/** What one counter holds now, for the admin API. */
export interface CounterReading {
  key: string;
  /** bytes or refusals counted, objects in the set, slots held, or (rate) tokens available now */
  value: number;
}

export class LimitsUnavailable extends Error {}

/** A rate counter's parameters, to turn its stored time into tokens available. */
export interface RateParams {
  periodMs: number;
  burst: number;
}

export interface LimitStore {
  /** memory: answers at once; redis: a promise (rejects with LimitsUnavailable) */
  run(ops: readonly Op[]): number[] | Promise<number[]>;
  /** false while the store cannot answer (Redis down): the limiter fails closed, or allows */
  connected(): boolean;
  /** every counter kept for this subject (rules whose `per` includes sub), read now */
  readSubject(sub: string, rateOf: (key: string) => RateParams | undefined): Promise<CounterReading[]>;
  /** deletes every counter kept for this subject; resolves with how many */
  resetSubject(sub: string): Promise<number>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------
// Memory: one process. The same operations on maps, with expiry read on access.

type Entry =
  | { kind: 'n'; n: number; exp: number }
  | { kind: 'set'; set: Set<string>; exp: number }
  | { kind: 'slots'; slots: Map<string, number>; exp: number };

/** GCRA, as the Lua script does it: returns tokens granted or −(ms to wait for one). */
export function gcraTake(tat: number, now: number, periodMs: number, burst: number, want: number): { granted: number; tat: number } {
  const start = Math.max(tat, now);
  let k = Math.floor((now + periodMs * burst - start) / periodMs);
  if (k > want) k = want;
  if (k >= 1) return { granted: k, tat: start + k * periodMs };
  return { granted: -Math.max(1, Math.ceil(start + periodMs - periodMs * burst - now)), tat: start };
}

/** Tokens a GCRA bucket would grant now (the admin API's reading). */
export function gcraAvailable(tat: number, now: number, periodMs: number, burst: number): number {
  return Math.max(0, Math.floor((now + periodMs * burst - Math.max(tat, now)) / periodMs));
}

export class MemoryLimitStore implements LimitStore {
  private readonly entries = new Map<string, Entry>();
  private nextSweep = 0;

  private readonly prefix: string;
  private readonly clock: () => number;
  constructor(
    prefix: string,
    clock: () => number = Date.now,
  ) {
    this.prefix = prefix;
    this.clock = clock;
  }

  connected(): boolean {
    return true;
  }

  private live(key: string, now: number): Entry | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.exp <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  private sweep(now: number): void {
    if (now < this.nextSweep) return;
    this.nextSweep = now + 60_000;
    for (const [key, e] of this.entries) if (e.exp <= now) this.entries.delete(key);
  }

  run(ops: readonly Op[]): number[] {
    const now = this.clock();
    this.sweep(now);
    const out: number[] = [];
    for (const o of ops) {
      switch (o.op) {
        case 'add': {
          const e = this.live(o.key, now);
          const n = (e?.kind === 'n' ? e.n : 0) + o.delta;
          // A read (delta 0) creates nothing.
          if (o.delta !== 0) this.entries.set(o.key, { kind: 'n', n, exp: o.expireAt });
          out.push(n);
          break;
        }
        case 'set': {
          let e = this.live(o.key, now);
          let added = 0;
          if (o.members.length > 0) {
            if (e?.kind !== 'set') this.entries.set(o.key, (e = { kind: 'set', set: new Set(), exp: o.expireAt }));
            e.exp = o.expireAt;
            for (const m of o.members) {
              if (!e.set.has(m)) added++;
              e.set.add(m);
            }
          }
          out.push(e?.kind === 'set' ? e.set.size : 0, added);
          break;
        }
        case 'has': {
          const e = this.live(o.key, now);
          out.push(e?.kind === 'set' && e.set.has(o.member) ? 1 : 0);
          break;
        }
        case 'take': {
          const e = this.live(o.key, now);
          const r = gcraTake(e?.kind === 'n' ? e.n : 0, now, o.periodMs, o.burst, o.want);
          if (r.granted > 0) this.entries.set(o.key, { kind: 'n', n: r.tat, exp: Math.ceil(r.tat) + 1000 });
          out.push(r.granted);
          break;
        }
        case 'give': {
          const e = this.live(o.key, now);
          if (e?.kind === 'n') {
            e.n -= o.periodMs * o.n;
            if (e.n <= now) this.entries.delete(o.key);
            else e.exp = Math.ceil(e.n) + 1000;
          }
          out.push(0);
          break;
        }
        case 'slot': {
          let e = this.live(o.key, now);
          if (e?.kind !== 'slots') e = { kind: 'slots', slots: new Map(), exp: 0 };
          for (const [m, exp] of e.slots) if (exp <= now) e.slots.delete(m);
          if (e.slots.size < o.max) {
            e.slots.set(o.member, now + o.ttlMs);
            e.exp = now + o.ttlMs;
            this.entries.set(o.key, e);
            out.push(1);
          } else out.push(0);
          break;
        }
        case 'free': {
          const e = this.live(o.key, now);
          if (e?.kind === 'slots') for (const m of o.members) e.slots.delete(m);
          out.push(0);
          break;
        }
        case 'touch': {
          let e = this.live(o.key, now);
          if (e?.kind !== 'slots') e = { kind: 'slots', slots: new Map(), exp: 0 };
          for (const m of o.members) e.slots.set(m, now + o.ttlMs);
          e.exp = now + o.ttlMs;
          this.entries.set(o.key, e);
          out.push(0);
          break;
        }
      }
    }
    return out;
  }

  async readSubject(sub: string, rateOf: (key: string) => RateParams | undefined): Promise<CounterReading[]> {
    const now = this.clock();
    const out: CounterReading[] = [];
    for (const key of this.subjectKeys(sub)) {
      const e = this.live(key, now);
      if (e === undefined) continue;
      if (e.kind === 'set') out.push({ key, value: e.set.size });
      else if (e.kind === 'slots') out.push({ key, value: [...e.slots.values()].filter((exp) => exp > now).length });
      else if (key.endsWith(':r')) {
        const rate = rateOf(key);
        out.push({ key, value: rate ? gcraAvailable(e.n, now, rate.periodMs, rate.burst) : 0 });
      } else out.push({ key, value: e.n });
    }
    return out;
  }

  private subjectKeys(sub: string): string[] {
    const marker = `:s=${Buffer.from(sub, 'utf8').toString('base64url')}`;
    const head = `${this.prefix}{limits}:`;
    return [...this.entries.keys()].filter((k) => {
      if (!k.startsWith(head)) return false;
      const at = k.indexOf(marker, head.length);
      const next = k[at + marker.length];
      return at !== -1 && (next === ',' || next === ':');
    });
  }

  async resetSubject(sub: string): Promise<number> {
    const keys = this.subjectKeys(sub);
    for (const k of keys) this.entries.delete(k);
    return keys.length;
  }

  async close(): Promise<void> {}
}
