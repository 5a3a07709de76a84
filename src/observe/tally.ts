// The data route's per-request metrics, counted in plain numbers per provider and handed to
// prom-client only when /metrics is read. prom-client's labelled inc()/observe() build,
// validate and hash a label object on every call: about 2 µs of a 1 KiB request's budget,
// where a few additions into a Float64Array cost a few nanoseconds (docs/performance.md).
import type { Counter, Registry } from 'prom-client';

/** What one provider counted since the last scrape, plus its duration histogram (cumulative). */
export class ProviderTally {
  /** requests by status * 4 + decision index, not yet handed to the counter */
  readonly requests = new Map<number, number>();
  bytes = 0;
  aborted = 0;
  /** per bucket (the last one is +Inf), never reset: histograms are cumulative */
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly provider: string,
    private readonly bounds: readonly number[],
  ) {
    this.buckets = new Float64Array(bounds.length + 1);
  }

  observe(seconds: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    this.buckets[i]!++;
    this.sum += seconds;
    this.count++;
  }
}

export const DECISIONS = ['allow', 'deny', 'error'] as const;

/** Hands what the tallies hold to the prom-client counters (at scrape time). */
export function flushTallies(
  tallies: Iterable<ProviderTally>,
  into: { requests: Counter<'provider' | 'status' | 'decision'>; bytes: Counter<'provider'>; aborted: Counter<'provider'> },
): void {
  for (const t of tallies) {
    for (const [key, n] of t.requests) {
      if (n === 0) continue;
      into.requests.labels(t.provider, String(key >> 2), DECISIONS[key & 3]!).inc(n);
      t.requests.set(key, 0);
    }
    if (t.bytes > 0) into.bytes.labels(t.provider).inc(t.bytes);
    if (t.aborted > 0) into.aborted.labels(t.provider).inc(t.aborted);
    t.bytes = 0;
    t.aborted = 0;
  }
}

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

/**
 * A Prometheus histogram by provider whose observations are ProviderTally.observe calls. It
 * registers in a prom-client Registry like prom-client's own metrics do (name, help, type,
 * aggregator, get()), in the same JSON shape, so /metrics and the cluster's
 * AggregatorRegistry read it like any other histogram.
 */
export class TalliedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    readonly help: string,
    readonly bounds: readonly number[],
    private readonly tallies: () => Iterable<ProviderTally>,
    registry: Registry,
  ) {
    // prom-client's registerMetric takes any object shaped like its metrics
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: MetricValue[] } {
    const values: MetricValue[] = [];
    for (const t of this.tallies()) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += t.buckets[i]!;
        values.push({ labels: { le: i < this.bounds.length ? this.bounds[i]! : '+Inf', provider: t.provider }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { provider: t.provider }, value: t.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { provider: t.provider }, value: t.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** For prom-client's Registry API (resetMetrics) */
  reset(): void {
    for (const t of this.tallies()) {
      t.buckets.fill(0);
      t.sum = 0;
      t.count = 0;
    }
  }
}
