// The data route's per-request metrics, counted in plain numbers per provider and turned into
// series only when /metrics is read. A labelled counter's inc() looks its series up by the
// label values on every call; a few additions into a Float64Array cost a few nanoseconds
// (docs/performance.md).
import { checkNames, histogramSamples, type MetricFamily, type Sample } from './exposition.ts';
import type { Counter, MetricSource, Registry } from './instruments.ts';

/** Observations counted into fixed buckets (the last one is +Inf); cumulative, never reset. */
export class HistogramTally {
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;

  readonly bounds: readonly number[];
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.buckets = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.buckets[i]!++;
    this.sum += value;
    this.count++;
  }

  samples(name: string, labels: Record<string, string>, into: Sample[]): void {
    histogramSamples(name, this.bounds, this.buckets, this.sum, this.count, labels, into);
  }
}

/** What one provider counted since the last scrape, plus its duration histogram (cumulative). */
export class ProviderTally extends HistogramTally {
  /** requests by status * 4 + decision index, not yet handed to the counter */
  readonly requests = new Map<number, number>();
  bytes = 0;
  aborted = 0;

  readonly provider: string;
  constructor(
    provider: string,
    bounds: readonly number[],
  ) {
    super(bounds);
    this.provider = provider;
  }
}

export const DECISIONS = ['allow', 'deny', 'error'] as const;

/** Hands what the tallies hold to the counters (at scrape time). */
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

/** A histogram by provider whose observations are ProviderTally.observe calls. */
export class TalliedHistogram implements MetricSource {
  readonly names: readonly string[];

  readonly name: string;
  readonly help: string;
  private readonly tallies: () => Iterable<ProviderTally>;
  constructor(
    name: string,
    help: string,
    tallies: () => Iterable<ProviderTally>,
    registry: Registry,
  ) {
    this.name = name;
    this.help = help;
    this.tallies = tallies;
    checkNames(name, ['provider']);
    this.names = [name];
    registry.register(this);
  }

  collect(): MetricFamily[] {
    const values: Sample[] = [];
    for (const t of this.tallies()) t.samples(this.name, { provider: t.provider }, values);
    return [{ name: this.name, help: this.help, type: 'histogram', aggregator: 'sum', values }];
  }
}
