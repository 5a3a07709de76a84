// The limits engine: which counters a request is charged to, whether it may start, what it
// costs when it ends, and the alerts on the way (docs/limits.md).
//
// Decided here, locally, without waiting — the data path's common case — and kept honest
// through the store (memory, or Redis shared by every replica and worker):
//  - rate: a GCRA bucket in the store; a replica takes `share` of the burst at a time, spends
//    it locally, takes the next ahead (in the sync) while the subject is busy, and gives back
//    what it has not used once the subject has been idle for `linger`;
//  - concurrent: slots in the store, taken one at a time and reused locally; an idle one goes
//    back after `linger` (a dead replica's expire after `slotTtl`);
//  - bytes and objects per window: counters in the store. A replica decides from its view
//    (the store's total at its last read, plus what it counted since); it writes what it
//    counted and reads everyone else's in the sync, at least every `stale` while the counter
//    is in use; within `share` of the quota (counting what other replicas were adding lately)
//    it writes and reads before every decision, so replicas near the end decide on one total.
//    Bytes are counted as they stream (every `sync`, and when the response is over); an object
//    counts when a GET of it was answered 200 or 206, once per window however often it is read.
// A request waits (a promise) only when the store must be asked: a subject's first request on
// this replica, a rate or a quota near its end. Nothing runs for a request no rule applies to,
// and nothing at all when `limits:` is absent.
//
// Mid-body (`midBody`): a download admitted under its byte quota is finished (the default;
// the next request is refused) or cut at the first sync that finds the quota reached.
import { hash, randomUUID } from 'node:crypto';
import { decodeJwt } from 'jose';
import type { Logger } from 'pino';
import type { Reason } from '../reasons.ts';
import type { LimitMetrics } from '../observe/metrics.ts';
import { crossed, type AlertSink, type LimitAlert } from './alerts.ts';
import { decodeKey, rateKey, refusalKey, slotKey, stem, whoPart, windowKey, type Who } from './keys.ts';
import { parseTokenLimits, type Dimension, type LimitSet, type LimitsConfig, type WindowLimit } from './schema.ts';
import { LimitsUnavailable, type LimitStore, type Op } from './store.ts';
import { WebhookSender } from './webhook.ts';

/** Who a request is, as the limits read it (a verified token's claims). */
export interface LimitSubject {
  readonly sub: string;
  readonly org: string | undefined;
  readonly project: string | undefined;
}

/** The data route's exchange, as the limits see it: bytes sent so far, and a way to cut it. */
export interface LimitedTransfer {
  readonly outcome: { bytes: number };
  /** `midBody: cut`: the subject reached a byte quota; end the response now, as cut */
  cutForQuota(detail: string): void;
}

export type LimitReason = Extract<Reason, 'rate_limited' | 'quota_exceeded' | 'limits_unavailable' | 'token_claims'>;

/** A request the limits refuse: answer `reason`, with Retry-After when set. */
export interface LimitRefusal {
  readonly refused: true;
  readonly reason: LimitReason;
  /** seconds, for Retry-After */
  readonly retryAfter: number | undefined;
  /** `rule limit/window`, for the audit event */
  readonly detail: string;
  /** the rule and the limit that refused (metrics) */
  readonly rule?: string;
  readonly limit?: string;
}

export type AdmitResult = Admission | LimitRefusal | undefined;

// ---------------------------------------------------------------------------------------
// Local state of one counter set: one rule applied to one `per` key.

interface WindowView {
  readonly limit: WindowLimit;
  start: number;
  end: number;
  key: string;
  /** the store's total at the last read (what this replica wrote included) */
  used: number;
  /** counted here, not written yet */
  pending: number;
  /** written, not answered yet */
  sending: number;
  /** decided from this view until then; after, the store is asked first */
  freshUntil: number;
  /** when the store last answered for this window */
  answeredAt: number;
  /** how fast other replicas add to it (per ms, smoothed): what this view does not see yet grows by that */
  othersRate: number;
}

interface ObjectView extends WindowView {
  /** URI hashes known to be in this window's set: reading them again costs nothing */
  readonly seen: Set<string>;
  /** admitted here, not answered yet */
  reserved: number;
  /** served here, not written yet */
  members: string[];
}

/** How long local state of an idle counter is kept (its views, before they are read again). */
const IDLE_MS = 60_000;
/** Past this, a window's seen-set is dropped (it is only a cache of the store's set). */
const SEEN_MAX = 50_000;
/** Stored counters outlive their window by this (a late write still finds them). */
const EXPIRY_SLACK_MS = 5_000;

class Bucket {
  lastUsed = 0;
  /** admissions holding this counter set */
  active = 0;
  /** rate tokens taken from the store, unused */
  tokens = 0;
  /** a sync is taking tokens ahead for it */
  refilling = false;
  /** in the limiter's dirty set */
  dirty = false;
  /** concurrency slots this replica holds in the store (members) */
  readonly held: string[] = [];
  idleSince = 0;
  touchedAt = 0;
  readonly bytes: WindowView[];
  readonly objects: ObjectView[];
  /** `rule limit/window`, for refusals */
  readonly rateDetail: string;
  readonly slotDetail: string;

  readonly rule: string;
  readonly limits: LimitSet;
  readonly who: Who;
  readonly stem: string;
  constructor(
    rule: string,
    limits: LimitSet,
    who: Who,
    stem: string,
  ) {
    this.rule = rule;
    this.limits = limits;
    this.who = who;
    this.stem = stem;
    const view = (limit: WindowLimit): WindowView => ({ limit, start: 0, end: 0, key: '', used: 0, pending: 0, sending: 0, freshUntil: 0, answeredAt: 0, othersRate: 0 });
    this.bytes = limits.bytes.map(view);
    this.objects = limits.objects.map((limit) => ({ ...view(limit), seen: new Set<string>(), reserved: 0, members: [] }));
    this.rateDetail = `${rule} rate`;
    this.slotDetail = `${rule} concurrent`;
  }

  /** Nothing held, counted or waiting: the local state can go. */
  idle(now: number): boolean {
    if (this.active > 0 || this.held.length > 0 || this.tokens > 0 || now - this.lastUsed < IDLE_MS) return false;
    for (const w of this.bytes) if (w.pending > 0 || w.sending > 0) return false;
    for (const o of this.objects) if (o.members.length > 0 || o.sending > 0 || o.reserved > 0) return false;
    return true;
  }
}

/** The counter sets one (subject, provider) is charged to. */
interface Plan {
  readonly buckets: readonly Bucket[];
  readonly gen: number;
  readonly bytes: boolean;
  readonly objects: boolean;
}

/** An admitted request: `done` when its response is over (finished or cut). */
export class Admission {
  readonly refused = false;
  /** bytes already charged (counted as the response streams) */
  charged = 0;
  over = false;
  /** the list of admissions whose bytes are counted as they stream (Limiter.streaming) */
  prev: Admission | undefined = undefined;
  next: Admission | undefined = undefined;

  private readonly limiter: Limiter;
  readonly plan: Plan;
  readonly transfer: LimitedTransfer;
  readonly hash: string | undefined;
  readonly reserved: ObjectView[] | undefined;
  constructor(
    limiter: Limiter,
    plan: Plan,
    transfer: LimitedTransfer,
    hash: string | undefined,
    /** object windows this request reserved a place in */
    reserved: ObjectView[] | undefined,
  ) {
    this.limiter = limiter;
    this.plan = plan;
    this.transfer = transfer;
    this.hash = hash;
    this.reserved = reserved;
  }

  /** `served`: a GET answered 200 or 206, so its object counts. */
  done(served: boolean): void {
    if (this.over) return;
    this.over = true;
    this.limiter.release(this, served);
  }
}

/** What one request learnt from the store while it was being decided. */
class Asked {
  /** views read for this request: fresh for its decision whatever `stale` is */
  readonly read = new Set<WindowView>();
  /** object windows whose set does not hold this request's object */
  readonly notMember = new Set<ObjectView>();
}

/** Why one request must ask the store before it is decided. */
type Need =
  /** write what this replica counted in a window, and read the total */
  | { kind: 'bytes'; bucket: Bucket; view: WindowView; key: string; amount: number }
  | { kind: 'objects'; bucket: Bucket; view: ObjectView; key: string; members: string[] }
  | { kind: 'has'; view: ObjectView }
  | { kind: 'slot'; bucket: Bucket; member: string }
  | { kind: 'take'; bucket: Bucket };

/** What one sync wrote, to apply the answers to. */
type Sent =
  | { kind: 'bytes'; bucket: Bucket; view: WindowView; key: string; amount: number }
  | { kind: 'objects'; bucket: Bucket; view: ObjectView; key: string; members: string[] }
  | { kind: 'refusals'; sub: string; amount: number; start: number }
  | { kind: 'tokens'; bucket: Bucket }
  | { kind: 'other' };

interface CompiledRule {
  readonly name: string;
  readonly per: readonly Dimension[];
  readonly limits: LimitSet;
  readonly whenSets: Partial<Record<Dimension, ReadonlySet<string>>> | undefined;
}

export interface LimiterOptions {
  config: LimitsConfig;
  store: LimitStore;
  /** Redis key prefix (the redis: section's keyPrefix; memory: the same default) */
  prefix: string;
  metrics: LimitMetrics;
  logger: Logger;
  /** alerts to the audit log and its stream */
  sink?: AlertSink | undefined;
  /** memory: a single process needs no shares, no linger */
  local: boolean;
  /** close the store with the limiter (a process's memory store outlives one configuration) */
  ownsStore?: boolean;
  clock?: () => number;
}

const NO_PLAN = null;

export class Limiter {
  private readonly groups: CompiledRule[][];
  private readonly rulesByName: Map<string, CompiledRule>;
  private readonly buckets = new Map<string, Bucket>();
  /** plans by the subject object (a cached token's claims are one object) and provider name */
  private readonly plans = new WeakMap<object, Map<string, Plan | string | typeof NO_PLAN>>();
  private gen = 0;
  /** counter sets with something to write, return or refresh */
  private readonly dirty = new Set<Bucket>();
  /**
   * Admissions whose bytes are counted as they stream: a list through the admissions
   * themselves. (A Set added to and deleted from by every request nearly doubled the time
   * spent in GC at 1 KiB: measured.)
   */
  private streaming: Admission | undefined;
  /** limit refusals per subject since the last sync (alerts) */
  private readonly refusals = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  /** the sync under way: one at a time */
  private syncing: Promise<void> | undefined;
  private nextSweep = 0;
  private closed = false;
  private slotSeq = 0;
  private readonly instance = randomUUID().slice(0, 8);
  private readonly allow: boolean;
  private readonly clock: () => number;
  private readonly webhook: WebhookSender | undefined;
  private readonly tuning: { share: number; stale: number; linger: number; slotTtl: number; sync: number };
  private readonly localPath;
  private readonly storePath;

  private readonly opts: LimiterOptions;
  constructor(opts: LimiterOptions) {
    this.opts = opts;
    const { config } = opts;
    this.clock = opts.clock ?? Date.now;
    this.allow = config.store === 'redis' && config.onRedisError === 'allow';
    const t = config.redis;
    this.tuning = opts.local ? { share: 0, stale: t.stale, linger: 0, slotTtl: t.slotTtl, sync: t.sync } : { share: t.share, stale: t.stale, linger: t.linger, slotTtl: t.slotTtl, sync: t.sync };
    const compiled = config.rules.map(
      (r): CompiledRule => ({
        name: r.name,
        per: r.per,
        limits: r.limits,
        whenSets: r.when ? Object.fromEntries(Object.entries(r.when).map(([k, v]) => [k, new Set(v)])) : undefined,
      }),
    );
    this.rulesByName = new Map(compiled.map((r) => [r.name, r]));
    // Per `per`, the first rule (in order) whose `when` matches applies.
    const groups = new Map<string, CompiledRule[]>();
    for (const r of compiled) {
      const g = r.per.join(',');
      groups.set(g, [...(groups.get(g) ?? []), r]);
    }
    this.groups = [...groups.values()];
    this.webhook = config.alerts.webhook ? new WebhookSender(config.alerts.webhook, { logger: opts.logger, count: (r) => opts.metrics.webhook.labels(r).inc() }) : undefined;
    this.localPath = opts.metrics.checks.labels('local');
    this.storePath = opts.metrics.checks.labels('store');
    this.timer = setInterval(() => void this.runSync(false), Math.max(10, this.tuning.sync)).unref();
    if (this.allow) opts.logger.warn('limits.onRedisError is allow: while Redis is unreachable, limited requests are served unchecked');
  }

  /** false while the store cannot answer and limited requests fail closed */
  ready(): boolean {
    return this.allow ? !this.closed : !this.closed && this.opts.store.connected();
  }

  // -------------------------------------------------------------------------------------
  // Admission

  /**
   * May this request start? undefined: no rule applies; an Admission: yes (call `done` when
   * its response is over); a refusal: answer it. A promise only when the store had to be asked.
   */
  admit(subject: LimitSubject, token: string | undefined, provider: string, uri: string, transfer: LimitedTransfer): AdmitResult | Promise<AdmitResult> {
    const plan = this.planFor(subject, token, provider);
    if (plan === NO_PLAN) return undefined;
    if (typeof plan === 'string') return { refused: true, reason: 'token_claims', retryAfter: undefined, detail: plan };
    const hash = plan.objects ? objectHash(uri) : undefined;
    if (!this.opts.store.connected()) return this.unavailable(plan, transfer, hash);
    const now = this.clock();
    if (this.decidable(plan, hash, now)) {
      this.localPath.inc();
      return this.commit(plan, hash, transfer, now);
    }
    return this.attempt(plan, hash, transfer, 0, undefined, subject.sub);
  }

  /**
   * The common case, checked without allocating: every counter set of the plan can admit this
   * request from what the replica holds (tokens, a free slot, fresh views well short of their
   * quotas). Anything else — a window to roll, a view to read, a quota near, a refusal — goes
   * the long way (attempt), which decides it.
   */
  private decidable(plan: Plan, hash: string | undefined, now: number): boolean {
    const buckets = plan.buckets;
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i]!;
      const limits = b.limits;
      if (limits.rate !== undefined && b.tokens < 1) return false;
      if (limits.concurrent !== undefined && b.active >= b.held.length) return false;
      const bytes = b.bytes;
      for (let j = 0; j < bytes.length; j++) {
        const w = bytes[j]!;
        if (now >= w.end || now >= w.freshUntil || this.near(w, w.used + w.pending + w.sending, now)) return false;
      }
      if (hash === undefined) continue;
      const objects = b.objects;
      for (let j = 0; j < objects.length; j++) {
        const o = objects[j]!;
        if (now >= o.end || now >= o.freshUntil) return false;
        if (!o.seen.has(hash) && this.near(o, o.used + o.reserved + o.members.length + o.sending, now)) return false;
      }
    }
    return true;
  }

  private planFor(subject: LimitSubject, token: string | undefined, provider: string): Plan | string | typeof NO_PLAN {
    let byProvider = this.plans.get(subject);
    const known = byProvider?.get(provider);
    if (known !== undefined && (known === NO_PLAN || typeof known === 'string' || known.gen === this.gen)) return known;
    const plan = this.makePlan(subject, token, provider);
    if (byProvider === undefined) this.plans.set(subject, (byProvider = new Map()));
    byProvider.set(provider, plan);
    return plan;
  }

  private makePlan(subject: LimitSubject, token: string | undefined, provider: string): Plan | string | typeof NO_PLAN {
    const values: Who = { sub: subject.sub, org: subject.org, project: subject.project, provider };
    const buckets: Bucket[] = [];
    for (const group of this.groups) {
      const rule = group.find((r) => r.per.every((d) => values[d] !== undefined) && matches(r.whenSets, values));
      if (rule) buckets.push(this.bucket(rule.name, rule.limits, rule.per, values, ''));
    }
    const claimed = token === undefined ? undefined : tokenLimits(token);
    if (typeof claimed === 'string') return claimed;
    if (claimed !== undefined) buckets.push(this.bucket('token', claimed, ['sub'], values, JSON.stringify(claimed)));
    if (buckets.length === 0) return NO_PLAN;
    return { buckets, gen: this.gen, bytes: buckets.some((b) => b.bytes.length > 0), objects: buckets.some((b) => b.objects.length > 0) };
  }

  private bucket(rule: string, limits: LimitSet, per: readonly Dimension[], values: Who, variant: string): Bucket {
    const who = whoPart(per, values);
    const id = `${rule}\n${who}\n${variant}`;
    let b = this.buckets.get(id);
    if (b === undefined) {
      const mine: Who = {};
      for (const d of per) mine[d] = values[d];
      b = new Bucket(rule, limits, mine, stem(this.opts.prefix, rule, who));
      this.buckets.set(id, b);
    }
    return b;
  }

  private attempt(plan: Plan, hash: string | undefined, transfer: LimitedTransfer, round: number, asked: Asked | undefined, sub: string): AdmitResult | Promise<AdmitResult> {
    const now = this.clock();
    let refusal: LimitRefusal | undefined;
    let needs: Need[] | undefined;
    for (const b of plan.buckets) {
      // A view older than `stale` is read again; within `share` of the quota too (this
      // replica's count written first), so that replicas near the end decide on one total.
      for (const w of b.bytes) {
        this.roll(w, b, 'bytes', now);
        const read = asked?.read.has(w) === true;
        const total = w.used + w.pending + w.sending;
        if (!read && w.freshUntil <= now) (needs ??= []).push(this.writeBytes(b, w));
        else if (total >= w.limit.max) refusal = worse(refusal, this.quota(b, 'bytes', w, now));
        else if (!read && this.near(w, total, now)) (needs ??= []).push(this.writeBytes(b, w));
      }
      if (hash !== undefined) {
        for (const o of b.objects) {
          this.roll(o, b, 'objects', now);
          const read = asked?.read.has(o) === true;
          const total = o.used + o.reserved + o.members.length + o.sending;
          if (!read && o.freshUntil <= now) (needs ??= []).push(this.writeObjects(b, o));
          else if (o.seen.has(hash)) continue;
          else if (total >= o.limit.max) {
            // At the quota by this replica's count: objects served here may already be in the
            // store's set (read on another replica), so write them first, then ask about this one.
            if (!read && o.members.length > 0) (needs ??= []).push(this.writeObjects(b, o));
            else if (asked?.notMember.has(o)) refusal = worse(refusal, this.quota(b, 'objects', o, now));
            else (needs ??= []).push({ kind: 'has', view: o });
          } else if (!read && this.near(o, total, now)) (needs ??= []).push(this.writeObjects(b, o));
        }
      }
      if (b.limits.concurrent !== undefined && b.active >= b.held.length) (needs ??= []).push({ kind: 'slot', bucket: b, member: `${this.instance}:${++this.slotSeq}` });
      // Tokens held here are spent until the counter set has been idle for `linger`.
      if (b.limits.rate !== undefined && b.tokens < 1) (needs ??= []).push({ kind: 'take', bucket: b });
    }
    if (refusal !== undefined) return this.refuse(refusal, sub);
    if (needs === undefined) {
      if (round === 0) this.localPath.inc();
      return this.commit(plan, hash, transfer, now);
    }
    if (round === 0) this.storePath.inc();
    // Tokens or slots taken meanwhile by requests that raced this one: it waits no longer.
    if (round >= 3) return this.refuse({ refused: true, reason: 'rate_limited', retryAfter: 1, detail: `${plan.buckets[0]!.rule} busy`, rule: plan.buckets[0]!.rule, limit: 'busy' }, sub);
    const ops = needs.map((n) => this.needOp(n, hash));
    const failed = (err: unknown): AdmitResult => {
      this.unwritten(needs);
      return this.unavailable(plan, transfer, hash, err);
    };
    let answer: number[] | Promise<number[]>;
    try {
      answer = this.opts.store.run(ops);
    } catch (err) {
      return failed(err);
    }
    const state = asked ?? new Asked();
    const next = (results: number[]): AdmitResult | Promise<AdmitResult> => {
      const refused = this.applyNeeds(needs, results, hash, state);
      if (refused !== undefined) return this.refuse(refused, sub);
      return this.attempt(plan, hash, transfer, round + 1, state, sub);
    };
    if (Array.isArray(answer)) return next(answer);
    return answer.then(next, failed);
  }

  /**
   * Near the end of a quota, a replica decides on the store's total rather than its view: within
   * `share` of the limit, counting what other replicas are likely to have added since the view
   * was read (their recent pace, over the time since and two syncs to come).
   */
  private near(w: WindowView, total: number, now: number): boolean {
    if (this.tuning.stale === 0) return true;
    const unseen = w.othersRate * (now - w.answeredAt + 2 * this.tuning.sync);
    return total + unseen + w.limit.max * this.tuning.share >= w.limit.max;
  }

  /** Rate tokens a replica takes at a time: its `share` of the burst (memory: one). */
  private want(burst: number): number {
    return Math.max(1, Math.floor(burst * this.tuning.share));
  }

  /** Moves a window's pending bytes to `sending`, to be written with the read. */
  private writeBytes(bucket: Bucket, view: WindowView): Need {
    const amount = view.pending;
    view.pending = 0;
    view.sending += amount;
    return { kind: 'bytes', bucket, view, key: view.key, amount };
  }

  private writeObjects(bucket: Bucket, view: ObjectView): Need {
    const members = view.members;
    view.members = [];
    view.sending += members.length;
    return { kind: 'objects', bucket, view, key: view.key, members };
  }

  private needOp(n: Need, hash: string | undefined): Op {
    switch (n.kind) {
      case 'bytes':
        return { op: 'add', key: n.key, delta: n.amount, expireAt: n.view.end + EXPIRY_SLACK_MS };
      case 'objects':
        return { op: 'set', key: n.key, expireAt: n.view.end + EXPIRY_SLACK_MS, members: n.members };
      case 'has':
        return { op: 'has', key: n.view.key, member: hash! };
      case 'slot':
        return { op: 'slot', key: slotKey(n.bucket.stem), max: n.bucket.limits.concurrent!, ttlMs: this.tuning.slotTtl, member: n.member };
      case 'take': {
        const rate = n.bucket.limits.rate!;
        return { op: 'take', key: rateKey(n.bucket.stem), periodMs: rate.periodMs, burst: rate.burst, want: this.want(rate.burst) };
      }
    }
  }

  /** What a request wrote but the store did not take goes back to be written by a later sync. */
  private unwritten(needs: readonly Need[]): void {
    const now = this.clock();
    for (const n of needs) {
      if (n.kind === 'bytes') this.bytesWritten(n.bucket, n.view, n.key, n.amount, undefined, now);
      else if (n.kind === 'objects') this.objectsWritten(n.bucket, n.view, n.key, n.members, undefined, undefined, now);
    }
  }

  /** The store's answers to what a request needed; a refusal when one says no. */
  private applyNeeds(needs: readonly Need[], results: readonly number[], hash: string | undefined, asked: Asked): LimitRefusal | undefined {
    const now = this.clock();
    let refusal: LimitRefusal | undefined;
    let r = 0;
    for (const n of needs) {
      switch (n.kind) {
        case 'bytes':
          this.bytesWritten(n.bucket, n.view, n.key, n.amount, results[r++], now);
          asked.read.add(n.view);
          break;
        case 'objects':
          this.objectsWritten(n.bucket, n.view, n.key, n.members, results[r++], results[r++], now);
          asked.read.add(n.view);
          break;
        case 'has':
          if (results[r++] === 1) n.view.seen.add(hash!);
          else asked.notMember.add(n.view);
          break;
        case 'slot':
          if (results[r++] === 1) {
            n.bucket.held.push(n.member);
            n.bucket.touchedAt = now;
            this.mark(n.bucket);
          } else refusal = worse(refusal, { refused: true, reason: 'rate_limited', retryAfter: 1, detail: n.bucket.slotDetail, rule: n.bucket.rule, limit: 'concurrent' });
          break;
        case 'take': {
          const k = results[r++]!;
          if (k > 0) {
            n.bucket.tokens += k;
            this.mark(n.bucket);
          } else refusal = worse(refusal, { refused: true, reason: 'rate_limited', retryAfter: Math.max(1, Math.ceil(-k / 1000)), detail: n.bucket.rateDetail, rule: n.bucket.rule, limit: 'rate' });
          break;
        }
      }
    }
    return refusal;
  }

  private commit(plan: Plan, hash: string | undefined, transfer: LimitedTransfer, now: number): Admission {
    let reserved: ObjectView[] | undefined;
    for (const b of plan.buckets) {
      b.active++;
      b.lastUsed = now;
      if (b.limits.rate !== undefined) b.tokens--;
      if (hash !== undefined) {
        for (const o of b.objects) {
          if (o.seen.has(hash)) continue;
          o.reserved++;
          (reserved ??= []).push(o);
        }
      }
      this.mark(b);
    }
    const admission = new Admission(this, plan, transfer, hash, reserved);
    if (plan.bytes) this.stream(admission);
    return admission;
  }

  /** The store cannot answer: fail closed, or (onRedisError: allow) serve unchecked but still count. */
  private unavailable(plan: Plan, transfer: LimitedTransfer, hash: string | undefined, err?: unknown): AdmitResult {
    if (err !== undefined && !(err instanceof LimitsUnavailable)) this.opts.logger.error({ err }, 'limits check failed');
    this.opts.metrics.unavailable.labels(this.allow ? 'allowed' : 'denied').inc();
    if (!this.allow) return { refused: true, reason: 'limits_unavailable', retryAfter: 1, detail: 'limits store unavailable' };
    const now = this.clock();
    for (const b of plan.buckets) {
      b.active++;
      b.lastUsed = now;
      this.mark(b);
    }
    const admission = new Admission(this, plan, transfer, hash, undefined);
    if (plan.bytes) this.stream(admission);
    return admission;
  }

  private quota(b: Bucket, limit: 'bytes' | 'objects', w: WindowView, now: number): LimitRefusal {
    return { refused: true, reason: 'quota_exceeded', retryAfter: Math.max(1, Math.ceil((w.end - now) / 1000)), detail: `${b.rule} ${limit}/${w.limit.label}`, rule: b.rule, limit };
  }

  private refuse(refusal: LimitRefusal, sub: string): LimitRefusal {
    this.opts.metrics.refusals.labels(refusal.rule ?? '-', refusal.limit ?? '-').inc();
    if (this.opts.config.alerts.refusals) this.refusals.set(sub, (this.refusals.get(sub) ?? 0) + 1);
    return refusal;
  }

  /** Moves a view to the window `now` is in: the new window starts unread (another replica may have counted in it). */
  private roll(w: WindowView, b: Bucket, kind: 'bytes' | 'objects', now: number): void {
    if (now < w.end) return;
    const ms = w.limit.ms;
    w.start = Math.floor(now / ms) * ms;
    w.end = w.start + ms;
    w.key = windowKey(b.stem, kind, w.limit.label, w.start);
    w.used = 0;
    w.freshUntil = 0;
    w.answeredAt = 0;
    if (kind === 'objects') (w as ObjectView).seen.clear();
  }

  // -------------------------------------------------------------------------------------
  // The end of a response

  /** Into the dirty set, once (a flag rather than a Set lookup on every request). */
  private mark(b: Bucket): void {
    if (b.dirty) return;
    b.dirty = true;
    this.dirty.add(b);
  }

  private stream(a: Admission): void {
    a.next = this.streaming;
    if (this.streaming !== undefined) this.streaming.prev = a;
    this.streaming = a;
  }

  private unstream(a: Admission): void {
    if (a.prev !== undefined) a.prev.next = a.next;
    else if (this.streaming === a) this.streaming = a.next;
    else return; // not on the list
    if (a.next !== undefined) a.next.prev = a.prev;
    a.prev = a.next = undefined;
  }

  /** Called once per admission: releases its slot, charges its last bytes and its object. */
  release(a: Admission, served: boolean): void {
    const now = this.clock();
    const delta = a.transfer.outcome.bytes - a.charged;
    a.charged += Math.max(0, delta);
    this.unstream(a);
    for (const b of a.plan.buckets) {
      b.active--;
      b.lastUsed = now;
      if (b.active < b.held.length) b.idleSince = now;
      if (delta > 0) {
        for (const w of b.bytes) {
          if (now >= w.end) this.roll(w, b, 'bytes', now);
          w.pending += delta;
        }
      }
      this.mark(b);
    }
    const hash = a.hash;
    if (a.reserved !== undefined) {
      for (const o of a.reserved) {
        o.reserved--;
        if (!served || hash === undefined || o.seen.has(hash)) continue;
        if (o.seen.size >= SEEN_MAX) o.seen.clear();
        o.seen.add(hash);
        o.members.push(hash);
      }
    }
  }

  // -------------------------------------------------------------------------------------
  // Sync: write what was counted, read everyone else's, give back what is not used

  /** One sync (also run by the timer every `sync`); resolves when its answers are applied. */
  /** A sync that writes everything counted so far (admin reads, close, tests). */
  sync(): Promise<void> {
    return this.runSync(true);
  }

  private runSync(all: boolean): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.syncing) return all ? this.syncing.then(() => this.runSync(true)) : this.syncing;
    const run = this.syncNow(all).finally(() => {
      this.syncing = undefined;
    });
    this.syncing = run;
    return run;
  }

  /**
   * Should a window's count be written (and its total read) in this sync? Far from its quota a
   * replica writes a window about once per `stale` (when its view is about to go stale, or
   * once it holds a notable share of the quota unwritten); near it, every sync.
   */
  private due(w: WindowView, unwritten: number, recent: boolean, now: number, all: boolean): boolean {
    const expiring = w.freshUntil - now <= this.tuning.sync;
    if (unwritten === 0) return recent && expiring;
    return all || expiring || unwritten >= (w.limit.max * this.tuning.share) / 4 || this.near(w, w.used + unwritten + w.sending, now);
  }

  private async syncNow(all: boolean): Promise<void> {
    const now = this.clock();
    // Bytes as they stream.
    for (let a = this.streaming; a !== undefined; a = a.next) {
      const delta = a.transfer.outcome.bytes - a.charged;
      if (delta <= 0) continue;
      a.charged += delta;
      for (const b of a.plan.buckets) {
        for (const w of b.bytes) {
          this.roll(w, b, 'bytes', now);
          w.pending += delta;
        }
        this.mark(b);
      }
    }
    const ops: Op[] = [];
    const sent: Sent[] = [];
    const connected = this.opts.store.connected();
    for (const b of this.dirty) {
      // Used within `stale`: its views are kept fresh, so its next request decides locally.
      const recent = b.lastUsed > now - this.tuning.stale;
      for (const w of b.bytes) {
        this.roll(w, b, 'bytes', now);
        if (!connected || !this.due(w, w.pending, recent, now, all)) continue;
        ops.push({ op: 'add', key: w.key, delta: w.pending, expireAt: w.end + EXPIRY_SLACK_MS });
        sent.push({ kind: 'bytes', bucket: b, view: w, key: w.key, amount: w.pending });
        w.sending += w.pending;
        w.pending = 0;
      }
      for (const o of b.objects) {
        this.roll(o, b, 'objects', now);
        if (!connected || !this.due(o, o.members.length, recent, now, all)) continue;
        const members = o.members;
        o.members = [];
        ops.push({ op: 'set', key: o.key, expireAt: o.end + EXPIRY_SLACK_MS, members });
        sent.push({ kind: 'objects', bucket: b, view: o, key: o.key, members });
        o.sending += members.length;
      }
      const rate = b.limits.rate;
      if (connected && rate !== undefined) {
        const want = this.want(rate.burst);
        if (b.tokens > 0 && now - b.lastUsed >= this.tuning.linger) {
          // Unused tokens go back once the counter set has been idle for `linger`.
          ops.push({ op: 'give', key: rateKey(b.stem), periodMs: rate.periodMs, n: b.tokens });
          sent.push({ kind: 'other' });
          b.tokens = 0;
        } else if (!this.opts.local && b.tokens < want / 2 && now - b.lastUsed < 2 * this.tuning.sync && !b.refilling) {
          // Refilled ahead, in this one call, while the subject is busy: its requests need not wait.
          b.refilling = true;
          ops.push({ op: 'take', key: rateKey(b.stem), periodMs: rate.periodMs, burst: rate.burst, want: want - b.tokens });
          sent.push({ kind: 'tokens', bucket: b });
        }
      }
      const surplus = b.held.length - b.active;
      if (connected && surplus > 0 && now - b.idleSince >= this.tuning.linger) {
        ops.push({ op: 'free', key: slotKey(b.stem), members: b.held.splice(b.held.length - surplus, surplus) });
        sent.push({ kind: 'other' });
      }
      if (connected && b.held.length > 0 && now - b.touchedAt >= this.tuning.slotTtl / 3) {
        b.touchedAt = now;
        ops.push({ op: 'touch', key: slotKey(b.stem), ttlMs: this.tuning.slotTtl, members: [...b.held] });
        sent.push({ kind: 'other' });
      }
    }
    const refusals = this.opts.config.alerts.refusals;
    if (refusals && connected && this.refusals.size > 0) {
      const start = Math.floor(now / refusals.ms) * refusals.ms;
      for (const [sub, amount] of this.refusals) {
        ops.push({ op: 'add', key: refusalKey(this.opts.prefix, sub, refusals.label, start), delta: amount, expireAt: start + refusals.ms + EXPIRY_SLACK_MS });
        sent.push({ kind: 'refusals', sub, amount, start });
      }
      this.refusals.clear();
    }
    if (ops.length > 0) {
      let results: number[] | undefined;
      try {
        results = await this.opts.store.run(ops);
      } catch (err) {
        if (!(err instanceof LimitsUnavailable)) this.opts.logger.error({ err }, 'limits sync failed');
      }
      this.applySync(sent, results, this.clock());
    }
    if (this.opts.config.midBody === 'cut') this.cutOver();
    this.sweep(now);
  }

  private applySync(sent: readonly Sent[], results: readonly number[] | undefined, now: number): void {
    let r = 0;
    for (const s of sent) {
      if (s.kind === 'other') {
        r++;
        continue;
      }
      if (s.kind === 'tokens') {
        const k = results?.[r++];
        s.bucket.refilling = false;
        if (k !== undefined && k > 0) s.bucket.tokens += k;
        continue;
      }
      if (s.kind === 'refusals') {
        const total = results?.[r++];
        const cfg = this.opts.config.alerts.refusals!;
        if (total === undefined) this.refusals.set(s.sub, (this.refusals.get(s.sub) ?? 0) + s.amount);
        else if (total - s.amount < cfg.count && total >= cfg.count) {
          this.emit({ alert: 'refusals', rule: '-', limit: 'refusals', who: { sub: s.sub }, window: cfg.label, start: s.start, end: s.start + cfg.ms, threshold: cfg.count, used: total, max: cfg.count });
        }
        continue;
      }
      if (s.kind === 'bytes') {
        this.bytesWritten(s.bucket, s.view, s.key, s.amount, results?.[r++], now);
      } else {
        const size = results?.[r++];
        const added = results?.[r++];
        this.objectsWritten(s.bucket, s.view, s.key, s.members, size, added, now);
      }
    }
  }

  /** The store's answer to bytes this replica counted (undefined: not written, kept for the next sync). */
  private bytesWritten(b: Bucket, v: WindowView, key: string, amount: number, total: number | undefined, now: number): void {
    v.sending -= amount;
    if (total === undefined) {
      // Counted again at the next sync (into the window then current).
      v.pending += amount;
      return;
    }
    if (v.key === key) this.answered(v, total, amount, now);
    if (amount > 0) this.crossings(b, 'bytes', v, key, this.opts.config.alerts.quota, total - amount, total);
  }

  /** The store's answer to objects this replica served (undefined: not written, kept for the next sync). */
  private objectsWritten(b: Bucket, o: ObjectView, key: string, members: string[], size: number | undefined, added: number | undefined, now: number): void {
    o.sending -= members.length;
    if (size === undefined || added === undefined) {
      o.members.push(...members);
      return;
    }
    if (o.key === key) this.answered(o, size, added, now);
    if (added > 0) this.crossings(b, 'objects', o, key, this.opts.config.alerts.quota, size - added, size);
  }

  /** A total read from the store: the view, and how fast others add to it (what grew beyond our own write). */
  private answered(v: WindowView, total: number, own: number, now: number): void {
    if (v.answeredAt > 0 && now > v.answeredAt) {
      const others = Math.max(0, total - v.used - own) / (now - v.answeredAt);
      v.othersRate = (v.othersRate + others) / 2;
    }
    v.used = total;
    v.answeredAt = now;
    v.freshUntil = now + this.tuning.stale;
  }

  private crossings(b: Bucket, limit: 'bytes' | 'objects', v: WindowView, key: string, thresholds: readonly number[], before: number, after: number): void {
    const start = Number(key.slice(key.lastIndexOf(':') + 1)) * 1000;
    for (const f of crossed(thresholds, v.limit.max, before, after)) {
      this.emit({ alert: 'quota', rule: b.rule, limit, who: b.who, window: v.limit.label, start, end: start + v.limit.ms, threshold: f, used: after, max: v.limit.max });
    }
  }

  private emit(a: { alert: LimitAlert['alert']; rule: string; limit: LimitAlert['limit']; who: Who; window: string; start: number; end: number; threshold: number; used: number; max: number }): void {
    const alert: LimitAlert = {
      id: randomUUID(),
      alert: a.alert,
      rule: a.rule,
      limit: a.limit,
      who: a.who,
      window: a.window,
      windowStart: new Date(a.start).toISOString(),
      windowEnd: new Date(a.end).toISOString(),
      threshold: a.threshold,
      used: a.used,
      max: a.max,
      at: new Date(this.clock()).toISOString(),
    };
    this.opts.metrics.alerts.labels(a.alert).inc();
    try {
      this.opts.sink?.alert(alert);
    } catch (err) {
      this.opts.logger.error({ err }, 'alert sink failed');
    }
    this.webhook?.send(alert);
  }

  /** `midBody: cut`: every download still streaming on a reached byte quota is cut now. */
  private cutOver(): void {
    for (let a = this.streaming; a !== undefined; ) {
      const next = a.next;
      for (const b of a.plan.buckets) {
        const w = b.bytes.find((v) => v.used + v.pending + v.sending >= v.limit.max);
        if (w === undefined) continue;
        this.unstream(a);
        const detail = `${b.rule} bytes/${w.limit.label}`;
        this.opts.metrics.cut.labels(b.rule).inc();
        a.transfer.cutForQuota(detail);
        break;
      }
      a = next;
    }
  }

  private sweep(now: number): void {
    for (const b of [...this.dirty]) {
      const busy = b.active > 0 || b.held.length > 0 || b.tokens > 0 || b.lastUsed > now - this.tuning.stale || b.bytes.some((w) => w.pending > 0 || w.sending > 0) || b.objects.some((o) => o.members.length > 0 || o.sending > 0);
      if (!busy) {
        this.dirty.delete(b);
        b.dirty = false;
      }
    }
    if (now < this.nextSweep) return;
    this.nextSweep = now + IDLE_MS;
    let removed = false;
    for (const [id, b] of this.buckets) {
      if (!b.idle(now)) continue;
      this.buckets.delete(id);
      this.dirty.delete(b);
      b.dirty = false;
      removed = true;
    }
    // Plans holding a removed counter set are made again on their next use.
    if (removed) this.gen++;
  }

  // -------------------------------------------------------------------------------------
  // Admin

  /** A subject's counters as the store holds them now (this replica's written first; others' at most one sync behind). */
  async usage(sub: string): Promise<UsageEntry[]> {
    const prefix = this.opts.prefix;
    // What this replica counted so far is written first.
    await this.sync();
    const readings = await this.opts.store.readSubject(sub, (key) => {
      const d = decodeKey(prefix, key);
      return d ? this.rulesByName.get(d.rule)?.limits.rate : undefined;
    });
    const now = this.clock();
    const out: UsageEntry[] = [];
    for (const { key, value } of readings) {
      const d = decodeKey(prefix, key);
      if (d === undefined) continue;
      const rule = this.rulesByName.get(d.rule);
      const entry: UsageEntry = { rule: d.rule, who: d.who, limit: d.kind, value };
      if (d.window !== undefined && d.start !== undefined) {
        const ms = rule?.limits[d.kind === 'objects' ? 'objects' : 'bytes'].find((w) => w.label === d.window)?.ms ?? this.opts.config.alerts.refusals?.ms;
        if (ms !== undefined && d.start + ms <= now) continue; // a window already over
        entry.window = d.window;
        entry.windowStart = new Date(d.start).toISOString();
      }
      if (d.kind === 'bytes' || d.kind === 'objects') entry.max = rule?.limits[d.kind].find((w) => w.label === d.window)?.max;
      else if (d.kind === 'concurrent') entry.max = rule?.limits.concurrent;
      else if (d.kind === 'rate') entry.max = rule?.limits.rate?.burst;
      out.push(entry);
    }
    return out.sort((a, b) => a.rule.localeCompare(b.rule) || a.limit.localeCompare(b.limit) || (a.window ?? '').localeCompare(b.window ?? ''));
  }

  /** Forgets a subject's usage, in the store and in this replica's views (others re-read within `stale`). */
  async reset(sub: string): Promise<number> {
    const removed = await this.opts.store.resetSubject(sub);
    for (const b of this.buckets.values()) {
      if (b.who.sub !== sub) continue;
      b.tokens = 0;
      for (const w of b.bytes) Object.assign(w, { used: 0, pending: 0, freshUntil: 0, answeredAt: 0 });
      for (const o of b.objects) {
        Object.assign(o, { used: 0, members: [], freshUntil: 0, answeredAt: 0 });
        o.seen.clear();
      }
    }
    this.refusals.delete(sub);
    return removed;
  }

  /** Gives back what this replica holds (slots, tokens), writes what it counted, stops. */
  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.timer);
    for (const b of this.buckets.values()) {
      b.idleSince = 0;
      b.lastUsed = 0;
    }
    // The runtime closes after its last request: this last sync writes what they counted.
    await this.sync().catch(() => undefined);
    this.closed = true;
    await this.webhook?.close();
    if (this.opts.ownsStore) await this.opts.store.close();
  }

  /** The webhook sender (tests wait for it). */
  get alertWebhook(): WebhookSender | undefined {
    return this.webhook;
  }
}

export interface UsageEntry {
  rule: string;
  who: Who;
  limit: string;
  /** bytes or objects used, refusals counted, slots held, or (rate) tokens available now */
  value: number;
  max?: number | undefined;
  window?: string;
  windowStart?: string;
}

function matches(sets: CompiledRule['whenSets'], values: Who): boolean {
  if (sets === undefined) return true;
  for (const d in sets) {
    const allowed = sets[d as Dimension]!;
    const v = values[d as Dimension];
    if (v === undefined || !allowed.has(v)) return false;
  }
  return true;
}

function worse(a: LimitRefusal | undefined, b: LimitRefusal): LimitRefusal {
  if (a === undefined) return b;
  return (b.retryAfter ?? 0) > (a.retryAfter ?? 0) ? b : a;
}

/** URI → its member, for the URIs read again and again (annotators reload their tasks' images). */
const hashes = new Map<string, string>();
const HASHES_MAX = 8192;

/** A URI's member in an objects set: 96 bits of its SHA-256 (no URI is stored in the limits). */
export function objectHash(uri: string): string {
  let h = hashes.get(uri);
  if (h !== undefined) return h;
  h = hash('sha256', uri, 'base64url').slice(0, 16);
  if (hashes.size >= HASHES_MAX) hashes.clear();
  if (uri.length <= 1024) hashes.set(uri, h);
  return h;
}

/** A token's own `limits` claim: its limits, a message when it is malformed, undefined when absent. */
function tokenLimits(token: string): LimitSet | string | undefined {
  let claim: unknown;
  try {
    claim = decodeJwt(token).limits;
  } catch {
    return undefined;
  }
  return claim === undefined ? undefined : parseTokenLimits(claim);
}
