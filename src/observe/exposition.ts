// The Prometheus text exposition format, version 0.0.4 (what /metrics answers), and the
// sum-across-processes a cluster primary applies to its workers' metric families.
// https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type MetricType = 'counter' | 'gauge' | 'histogram';

/** How one series combines over a cluster's processes. */
export type Aggregator = 'sum' | 'min' | 'max' | 'average' | 'first' | 'omit';

export interface Sample {
  /** the series name when it is not the family's (a histogram's _bucket, _sum, _count) */
  metricName?: string;
  labels: Record<string, string>;
  value: number;
}

/** One metric as read at scrape time: plain data, so it crosses the cluster's IPC as JSON. */
export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  aggregator: Aggregator;
  values: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Names are fixed in code: a bad one is a programming error, refused when the metric is made. */
export function checkNames(name: string, labelNames: readonly string[]): void {
  if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name: ${name}`);
  for (const l of labelNames) {
    if (!LABEL_NAME.test(l) || l.startsWith('__')) throw new Error(`invalid label name for ${name}: ${l}`);
  }
}

// HELP text escapes backslash and line feed; label values also the double quote.
const escapeHelp = (s: string) => s.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'));
const escapeLabelValue = (s: string) => s.replace(/[\\\n"]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));

/** Go's ParseFloat reads every finite JS number as String() writes it; the rest are spelled out. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function formatLabels(labels: Record<string, string>): string {
  let out = '';
  for (const name in labels) out += `${out ? ',' : '{'}${name}="${escapeLabelValue(labels[name]!)}"`;
  return out ? `${out}}` : '';
}

export function render(families: readonly MetricFamily[]): string {
  let out = '';
  for (const f of families) {
    out += `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
    for (const s of f.values) out += `${s.metricName ?? f.name}${formatLabels(s.labels)} ${formatValue(s.value)}\n`;
  }
  return out;
}

/** A histogram's series from per-bucket counts (the last one is +Inf): cumulative _bucket, _sum, _count. */
export function histogramSamples(name: string, bounds: readonly number[], counts: ArrayLike<number>, sum: number, count: number, labels: Record<string, string>, into: Sample[]): void {
  let cumulative = 0;
  for (let i = 0; i <= bounds.length; i++) {
    cumulative += counts[i]!;
    into.push({ metricName: `${name}_bucket`, labels: { ...labels, le: i < bounds.length ? formatValue(bounds[i]!) : '+Inf' }, value: cumulative });
  }
  into.push({ metricName: `${name}_sum`, labels, value: sum });
  into.push({ metricName: `${name}_count`, labels, value: count });
}

const combine: Record<Exclude<Aggregator, 'omit'>, (values: number[]) => number> = {
  sum: (v) => v.reduce((a, b) => a + b, 0),
  min: (v) => Math.min(...v),
  max: (v) => Math.max(...v),
  average: (v) => v.reduce((a, b) => a + b, 0) / v.length,
  first: (v) => v[0]!,
};

const seriesKey = (s: Sample) => `${s.metricName ?? ''}\u0000${JSON.stringify(Object.entries(s.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))}`;

/**
 * One set of families from several processes' sets: series with the same name and labels
 * combine by their family's aggregator (the first process's, as every process runs the same
 * code); families and series keep the order they were first seen in.
 */
export function aggregate(parts: readonly (readonly MetricFamily[])[]): MetricFamily[] {
  const byName = new Map<string, MetricFamily[]>();
  for (const part of parts) {
    for (const f of part) {
      const same = byName.get(f.name);
      if (same) same.push(f);
      else byName.set(f.name, [f]);
    }
  }
  const out: MetricFamily[] = [];
  for (const same of byName.values()) {
    const { name, help, type, aggregator } = same[0]!;
    if (aggregator === 'omit') continue;
    const series = new Map<string, { sample: Sample; values: number[] }>();
    for (const f of same) {
      for (const s of f.values) {
        const key = seriesKey(s);
        const seen = series.get(key);
        if (seen) seen.values.push(s.value);
        else series.set(key, { sample: s, values: [s.value] });
      }
    }
    const values: Sample[] = [];
    for (const { sample, values: v } of series.values()) values.push({ ...sample, value: combine[aggregator](v) });
    out.push({ name, help, type, aggregator, values });
  }
  return out;
}
