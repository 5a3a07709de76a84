// The few metric kinds Keyhole counts with outside its data-route tallies (./tally.ts): labelled
// counters, unlabelled gauges, and the registry that reads them all at scrape time.
import { checkNames, PROMETHEUS_CONTENT_TYPE, render, type Aggregator, type MetricFamily, type Sample } from './exposition.ts';

/** Anything that yields metric families when /metrics is read. */
export interface MetricSource {
  /** the family names it yields, so that two sources cannot claim one name */
  readonly names: readonly string[];
  collect(): MetricFamily[] | Promise<MetricFamily[]>;
}

/** One Keyhole instance's metrics (tests run several in a process). */
export class Registry {
  readonly contentType = PROMETHEUS_CONTENT_TYPE;
  private readonly sources: MetricSource[] = [];
  private readonly names = new Set<string>();

  register(source: MetricSource): void {
    for (const name of source.names) if (this.names.has(name)) throw new Error(`metric ${name} is registered twice`);
    for (const name of source.names) this.names.add(name);
    this.sources.push(source);
  }

  /** Every family, in registration order (the cluster's IPC carries this). */
  async getMetricsAsJSON(): Promise<MetricFamily[]> {
    const out: MetricFamily[] = [];
    for (const source of this.sources) out.push(...(await source.collect()));
    return out;
  }

  /** The text exposition. */
  async metrics(): Promise<string> {
    return render(await this.getMetricsAsJSON());
  }
}

/** One labelled series of a counter; hold on to it to count without a lookup. */
export class CounterChild {
  value = 0;
  readonly labels: Record<string, string>;
  constructor(labels: Record<string, string>) {
    this.labels = labels;
  }

  inc(n = 1): void {
    if (!(n >= 0)) throw new RangeError(`a counter only goes up (inc ${n})`);
    this.value += n;
  }
}

interface MetricOptions<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  registry: Registry;
  /** runs before every read: brings values counted elsewhere up to date */
  collect?: () => void;
}

export class Counter<L extends string = never> implements MetricSource {
  readonly names: readonly string[];
  private readonly help: string;
  private readonly labelNames: readonly string[];
  private readonly children = new Map<string, CounterChild>();
  private readonly beforeRead: (() => void) | undefined;

  constructor(opts: MetricOptions<L>) {
    this.labelNames = opts.labelNames ?? [];
    checkNames(opts.name, this.labelNames);
    this.names = [opts.name];
    this.help = opts.help;
    this.beforeRead = opts.collect;
    // Unlabelled: one series from the start, 0 until counted (no gap in rate()).
    if (this.labelNames.length === 0) this.children.set('', new CounterChild({}));
    opts.registry.register(this);
  }

  /** The series for these label values (in labelNames order), made on first use. */
  labels(...values: string[]): CounterChild {
    if (values.length !== this.labelNames.length) throw new Error(`${this.names[0]} takes ${this.labelNames.length} label value(s), got ${values.length}`);
    const key = values.length === 1 ? values[0]! : values.join('\u0000');
    let child = this.children.get(key);
    if (child === undefined) {
      const labels: Record<string, string> = {};
      for (let i = 0; i < values.length; i++) labels[this.labelNames[i]!] = values[i]!;
      child = new CounterChild(labels);
      this.children.set(key, child);
    }
    return child;
  }

  /** Counts on the unlabelled series. */
  inc(n = 1): void {
    if (this.labelNames.length !== 0) throw new Error(`${this.names[0]} has labels: use labels(...).inc()`);
    this.children.get('')!.inc(n);
  }

  collect(): MetricFamily[] {
    this.beforeRead?.();
    const values: Sample[] = [];
    for (const c of this.children.values()) values.push({ labels: c.labels, value: c.value });
    return [{ name: this.names[0]!, help: this.help, type: 'counter', aggregator: 'sum', values }];
  }
}

/** An unlabelled gauge: no series until it is set. */
export class Gauge implements MetricSource {
  readonly names: readonly string[];
  private readonly help: string;
  private readonly aggregator: Aggregator;
  private readonly beforeRead: (() => void) | undefined;
  private value: number | undefined;

  constructor(opts: Omit<MetricOptions<never>, 'labelNames'> & { aggregator?: Aggregator }) {
    checkNames(opts.name, []);
    this.names = [opts.name];
    this.help = opts.help;
    this.aggregator = opts.aggregator ?? 'sum';
    this.beforeRead = opts.collect;
    opts.registry.register(this);
  }

  set(v: number): void {
    this.value = v;
  }

  /** Back to no series (what a source that went away reports). */
  clear(): void {
    this.value = undefined;
  }

  collect(): MetricFamily[] {
    this.beforeRead?.();
    const values: Sample[] = this.value === undefined ? [] : [{ labels: {}, value: this.value }];
    return [{ name: this.names[0]!, help: this.help, type: 'gauge', aggregator: this.aggregator, values }];
  }
}
