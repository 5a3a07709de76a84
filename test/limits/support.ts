// Shared pieces of the limits tests: a limiter on a chosen store with a hand-driven clock, a
// fake transfer (the data route's side of an admission), and alert collection.
import pino from 'pino';
import { Limiter, type AdmitResult, type Admission, type LimitRefusal, type LimitSubject } from '../../src/limits/limiter.ts';
import { limitsSchema } from '../../src/limits/schema.ts';
import { MemoryLimitStore, type LimitStore } from '../../src/limits/store.ts';
import type { LimitAlert } from '../../src/limits/alerts.ts';
import { Metrics } from '../../src/observe/metrics.ts';

export class FakeTransfer {
  readonly outcome = { bytes: 0 };
  cut: string | undefined;
  cutForQuota(detail: string): void {
    this.cut = detail;
  }
}

export interface Rig {
  limiter: Limiter;
  store: LimitStore;
  metrics: Metrics;
  alerts: LimitAlert[];
  /** ms since the epoch, moved by the test */
  clock: { now: number };
  admit(who: Partial<LimitSubject> & { sub: string }, opts?: { provider?: string; uri?: string; token?: string; transfer?: FakeTransfer }): Promise<AdmitResult>;
}

/** A fixed instant inside an hour and a day: windows do not roll unless a test moves the clock. */
export const T0 = Date.UTC(2030, 0, 15, 10, 0, 0);

export function makeLimiter(limits: Record<string, unknown>, opts: { store?: LimitStore; clock?: { now: number }; prefix?: string } = {}): Rig {
  const clock = opts.clock ?? { now: T0 };
  const config = limitsSchema.parse(limits);
  const prefix = opts.prefix ?? 'keyhole:';
  const store = opts.store ?? new MemoryLimitStore(prefix, () => clock.now);
  const metrics = new Metrics(false);
  const alerts: LimitAlert[] = [];
  const limiter = new Limiter({
    config,
    store,
    prefix,
    metrics: metrics.limits(),
    logger: pino({ level: 'silent' }),
    sink: { alert: (a) => alerts.push(a) },
    local: config.store === 'memory',
    ownsStore: true,
    clock: () => clock.now,
  });
  // Subjects are objects the limiter caches plans on (a token's claims): one per name here.
  const subjects = new Map<string, LimitSubject>();
  return {
    limiter,
    store,
    metrics,
    alerts,
    clock,
    async admit(who, o = {}) {
      const key = JSON.stringify(who);
      let subject = subjects.get(key);
      if (!subject) subjects.set(key, (subject = { org: undefined, project: undefined, ...who }));
      return await limiter.admit(subject, o.token, o.provider ?? 'files', o.uri ?? 'local://files/a', o.transfer ?? new FakeTransfer());
    },
  };
}

export function isAdmission(r: AdmitResult): r is Admission {
  return r !== undefined && !r.refused;
}

export function refusal(r: AdmitResult): LimitRefusal | undefined {
  return r !== undefined && r.refused ? r : undefined;
}

/** Value of one counter series in the exposition, 0 when absent. */
export async function metric(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await metrics.registry.metrics();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (want.every((w) => (m[2] ?? '').includes(w))) return Number(m[3]);
  }
  return 0;
}
