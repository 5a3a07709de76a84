// Process and Node.js runtime metrics, under the names Prometheus client libraries use
// (process_*, nodejs_*), read at scrape time from the process's own counters. Two need
// watching between scrapes, and are facts about the whole process, so they run once per
// process however many registries read them: event-loop delay sampling (a libuv timer every
// 10 ms) and the GC observer.
import { readdirSync, readFileSync } from 'node:fs';
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import type { Aggregator, MetricFamily, MetricType, Sample } from './exposition.ts';
import type { MetricSource } from './instruments.ts';
import { HistogramTally } from './tally.ts';

const GC_BUCKETS = [0.001, 0.01, 0.1, 1, 2, 5];
const GC_KINDS = new Map<number, string>([
  [constants.NODE_PERFORMANCE_GC_MAJOR, 'major'],
  [constants.NODE_PERFORMANCE_GC_MINOR, 'minor'],
  [constants.NODE_PERFORMANCE_GC_MINOR_MARK_SWEEP, 'minor'],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, 'incremental'],
  [constants.NODE_PERFORMANCE_GC_WEAKCB, 'weakcb'],
]);

interface Watchers {
  delay: ReturnType<typeof monitorEventLoopDelay>;
  gc: Map<string, HistogramTally>;
}
let watchers: Watchers | undefined;

function watch(): Watchers {
  if (watchers) return watchers;
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const gc = new Map<string, HistogramTally>();
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      // a 'gc' entry's detail is { kind, flags } (Node's NodeGCPerformanceDetail)
      const { detail } = entry as { detail?: { kind?: number } | null };
      const kind = GC_KINDS.get(detail?.kind ?? -1) ?? 'other';
      let tally = gc.get(kind);
      if (tally === undefined) gc.set(kind, (tally = new HistogramTally(GC_BUCKETS)));
      tally.observe(entry.duration / 1000);
    }
  }).observe({ entryTypes: ['gc'] });
  return (watchers = { delay, gc });
}

const startTime = Math.round(performance.timeOrigin) / 1000;
const [major, minor, patch] = process.versions.node.split('.');

/** Linux's /proc figures, in bytes; absent elsewhere. */
function procStatus(): { rss?: number; vsize?: number; data?: number } {
  try {
    const text = readFileSync('/proc/self/status', 'utf8');
    const kib = (field: string) => {
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
      return m ? Number(m[1]) * 1024 : undefined;
    };
    return { rss: kib('VmRSS'), vsize: kib('VmSize'), data: kib('VmData') };
  } catch {
    return {};
  }
}

function openFds(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length - 1; // less the one readdir itself held open
  } catch {
    return undefined;
  }
}

let maxFdsRead = false;
let maxFds: number | undefined;
function maxOpenFiles(): number | undefined {
  if (maxFdsRead) return maxFds;
  maxFdsRead = true;
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m) maxFds = Number(m[1]);
  } catch {
    // not Linux: no such metric
  }
  return maxFds;
}

/** How long a callback queued now waits for the event loop. */
function loopLag(): Promise<number> {
  const start = process.hrtime.bigint();
  return new Promise((resolve) => setImmediate(() => resolve(Number(process.hrtime.bigint() - start) / 1e9)));
}

const NAMES = [
  'process_cpu_user_seconds_total',
  'process_cpu_system_seconds_total',
  'process_cpu_seconds_total',
  'process_start_time_seconds',
  'process_resident_memory_bytes',
  'process_virtual_memory_bytes',
  'process_heap_bytes',
  'process_open_fds',
  'process_max_fds',
  'nodejs_eventloop_lag_seconds',
  'nodejs_eventloop_lag_min_seconds',
  'nodejs_eventloop_lag_max_seconds',
  'nodejs_eventloop_lag_mean_seconds',
  'nodejs_eventloop_lag_stddev_seconds',
  'nodejs_eventloop_lag_p50_seconds',
  'nodejs_eventloop_lag_p90_seconds',
  'nodejs_eventloop_lag_p99_seconds',
  'nodejs_active_resources',
  'nodejs_active_resources_total',
  'nodejs_heap_size_total_bytes',
  'nodejs_heap_size_used_bytes',
  'nodejs_external_memory_bytes',
  'nodejs_heap_space_size_total_bytes',
  'nodejs_heap_space_size_used_bytes',
  'nodejs_heap_space_size_available_bytes',
  'nodejs_version_info',
  'nodejs_gc_duration_seconds',
] as const;

/** The process metrics, each name prefixed (Keyhole: `keyhole_`). */
export function processMetrics(prefix: string): MetricSource {
  const w = watch();
  return {
    names: NAMES.map((n) => prefix + n),
    async collect(): Promise<MetricFamily[]> {
      const out: MetricFamily[] = [];
      const family = (name: (typeof NAMES)[number], help: string, type: MetricType, values: Sample[], aggregator: Aggregator = 'sum') =>
        out.push({ name: prefix + name, help, type, aggregator, values });
      const one = (value: number | undefined): Sample[] => (value === undefined ? [] : [{ labels: {}, value }]);

      const lag = await loopLag();
      const cpu = process.cpuUsage();
      family('process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', 'counter', one(cpu.user / 1e6));
      family('process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', 'counter', one(cpu.system / 1e6));
      family('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', 'counter', one((cpu.user + cpu.system) / 1e6));
      family('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', 'gauge', one(startTime), 'omit');
      const proc = procStatus();
      family('process_resident_memory_bytes', 'Resident memory size in bytes.', 'gauge', one(proc.rss ?? process.memoryUsage.rss()));
      family('process_virtual_memory_bytes', 'Virtual memory size in bytes.', 'gauge', one(proc.vsize));
      family('process_heap_bytes', 'Process heap size in bytes.', 'gauge', one(proc.data));
      family('process_open_fds', 'Number of open file descriptors.', 'gauge', one(openFds()));
      family('process_max_fds', 'Maximum number of open file descriptors.', 'gauge', one(maxOpenFiles()));

      // Delays since the last scrape, then a fresh window.
      const d = w.delay;
      const seen = d.count > 0;
      family('nodejs_eventloop_lag_seconds', 'Lag of event loop in seconds.', 'gauge', one(lag), 'average');
      family('nodejs_eventloop_lag_min_seconds', 'The minimum recorded event loop delay.', 'gauge', one(seen ? d.min / 1e9 : undefined), 'min');
      family('nodejs_eventloop_lag_max_seconds', 'The maximum recorded event loop delay.', 'gauge', one(seen ? d.max / 1e9 : undefined), 'max');
      family('nodejs_eventloop_lag_mean_seconds', 'The mean of the recorded event loop delays.', 'gauge', one(seen ? d.mean / 1e9 : undefined), 'average');
      family('nodejs_eventloop_lag_stddev_seconds', 'The standard deviation of the recorded event loop delays.', 'gauge', one(seen ? d.stddev / 1e9 : undefined), 'average');
      family('nodejs_eventloop_lag_p50_seconds', 'The 50th percentile of the recorded event loop delays.', 'gauge', one(seen ? d.percentile(50) / 1e9 : undefined), 'average');
      family('nodejs_eventloop_lag_p90_seconds', 'The 90th percentile of the recorded event loop delays.', 'gauge', one(seen ? d.percentile(90) / 1e9 : undefined), 'average');
      family('nodejs_eventloop_lag_p99_seconds', 'The 99th percentile of the recorded event loop delays.', 'gauge', one(seen ? d.percentile(99) / 1e9 : undefined), 'average');
      d.reset();

      const resources = process.getActiveResourcesInfo();
      const byType = new Map<string, number>();
      for (const r of resources) byType.set(r, (byType.get(r) ?? 0) + 1);
      family('nodejs_active_resources', 'Number of active resources that are currently keeping the event loop alive, grouped by async resource type.', 'gauge', [...byType].map(([type, value]) => ({ labels: { type }, value })));
      family('nodejs_active_resources_total', 'Total number of active resources.', 'gauge', one(resources.length));

      const mem = process.memoryUsage();
      family('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', 'gauge', one(mem.heapTotal));
      family('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', 'gauge', one(mem.heapUsed));
      family('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', 'gauge', one(mem.external));
      const total: Sample[] = [];
      const used: Sample[] = [];
      const available: Sample[] = [];
      for (const s of getHeapSpaceStatistics()) {
        const labels = { space: s.space_name.replace(/_space$/, '') };
        total.push({ labels, value: s.space_size });
        used.push({ labels, value: s.space_used_size });
        available.push({ labels, value: s.space_available_size });
      }
      family('nodejs_heap_space_size_total_bytes', 'Process heap space size total from Node.js in bytes.', 'gauge', total);
      family('nodejs_heap_space_size_used_bytes', 'Process heap space size used from Node.js in bytes.', 'gauge', used);
      family('nodejs_heap_space_size_available_bytes', 'Process heap space size available from Node.js in bytes.', 'gauge', available);
      family('nodejs_version_info', 'Node.js version info.', 'gauge', [{ labels: { version: process.version, major: major!, minor: minor!, patch: patch! }, value: 1 }], 'first');

      const gc: Sample[] = [];
      for (const [kind, tally] of w.gc) tally.samples(prefix + 'nodejs_gc_duration_seconds', { kind }, gc);
      family('nodejs_gc_duration_seconds', 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.', 'histogram', gc);
      return out;
    },
  };
}
