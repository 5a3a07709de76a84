// Keyhole's hand-written /metrics judged by Prometheus itself (Debian's prometheus 2.42, no one
// here wrote it): `promtool check metrics` on a running Keyhole (Redis revocation, allowed,
// denied and upstream-error requests) and on a two-worker cluster's sum; then a real
// Prometheus server scrapes both, plus an exposition whose label values and help text need
// every escape, and its HTTP API must give back exactly what Keyhole served.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { Counter } from '../../src/observe/instruments.ts';
import { Metrics } from '../../src/observe/metrics.ts';
import type { RedisRevocationStore } from '../../src/auth/revocation-redis.ts';
import { baseYaml, dataUrl, filesProviderYaml, startKeyhole } from '../helpers/keyhole.ts';
import { freePort, redisRevocationYaml, startRedis } from '../helpers/redis.ts';
import { httpProviderItem, startUpstream } from '../helpers/upstream.ts';
import { testCerts } from '../helpers/certs.ts';
import { opsYaml, spawnKeyhole } from '../helpers/spawn.ts';

// Three real processes and a Prometheus on a shared 2-core machine: bounded, not tight.
t.setTimeout(120_000);

/**
 * promtool lints Keyhole does not follow, each line exactly, with the reason. Anything else
 * promtool reports is a failure.
 */
const ACCEPTED_LINTS = new Set([
  // prom-client's name for this gauge, kept on purpose: docs/metrics.md promises the process
  // metrics under the names client libraries give them, so existing dashboards keep working.
  // It is typed gauge (it goes down), so nothing mistakes it for a counter; the lint is about
  // the name only.
  'keyhole_nodejs_active_resources_total non-counter metrics should not have "_total" suffix',
]);

/** `promtool check metrics` on a text: its exit code and every line it reported (stdout and stderr). */
async function promtool(text: string): Promise<{ code: number | null; lines: string[] }> {
  const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  child.stdin.end(text);
  return { code: await exited, lines: out.split('\n').filter((l) => l.trim() !== '') };
}

/** Asserts promtool parsed the text and found nothing but the accepted lints. */
async function promtoolAccepts(t: Test, text: string, what: string): Promise<void> {
  t.ok(/^# TYPE /m.test(text), `${what}: not empty (promtool passes an empty input)`);
  const { code, lines } = await promtool(text);
  t.same(lines.filter((l) => !ACCEPTED_LINTS.has(l)), [], `${what}: promtool reports no problem beyond the accepted lints`);
  // 0: clean; 3: lint findings only (all accepted, checked above); 1 would be a parse failure.
  t.equal(code, lines.length === 0 ? 0 : 3, `${what}: promtool exit code ${code}`);
}

interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of one metric name in an exposition (Keyhole's own label values need no escapes here). */
function samples(text: string, name: string): Series[] {
  const out: Series[] = [];
  for (const m of text.matchAll(new RegExp(`^(${name})(?:\\{([^}]*)\\})? (\\S+)$`, 'gm'))) {
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="([^"\\]*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return out;
}

const total = (series: Series[]) => series.reduce((a, s) => a + s.value, 0);
const key = (labels: Record<string, string>, drop: string[] = []) =>
  JSON.stringify(Object.entries(labels).filter(([k]) => !drop.includes(k)).sort(([a], [b]) => (a < b ? -1 : 1)));

/**
 * histogram_quantile as Prometheus documents it: the rank's bucket, linear interpolation
 * inside it (from 0 for the first bucket), the highest finite bound when it falls in +Inf.
 */
function bucketQuantile(q: number, buckets: [number, number][]): number {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const count = sorted.at(-1)![1];
  let rank = q * count;
  const b = sorted.findIndex(([, n]) => n >= rank);
  if (b === sorted.length - 1) return sorted[sorted.length - 2]![0];
  let start = 0;
  let inBucket = sorted[b]![1];
  if (b > 0) {
    start = sorted[b - 1]![0];
    inBucket -= sorted[b - 1]![1];
    rank -= sorted[b - 1]![1];
  }
  return start + (sorted[b]![0] - start) * (rank / inBucket);
}

async function getText(url: string): Promise<string> {
  const res = await request(url);
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${text}`);
  return text;
}

/** Polls until `check` returns a value, or fails with what it last saw. */
async function until<T>(what: string | (() => string), check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The escapes a label value and a HELP text can need, served for Prometheus to read back. */
const ODD = 'we"ird\\prov\nider';
const ODD_HELP = 'line one\nback\\slash and "quotes"';

// ---------------------------------------------------------------------------------------
// Shared setup: one Redis, a single-process Keyhole, a two-worker cluster (the slowest to
// start, so it starts first), and the exposition with every escape.

const redis = await startRedis();
t.teardown(() => redis.stop());
const root = mkdtempSync(join(tmpdir(), 'keyhole-prom-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
writeFileSync(join(root, 'a.txt'), 'hello\n');

const clusterStarting = spawnKeyhole(
  'workers: 2\n' + opsYaml(root, redisRevocationYaml(redis)),
  { startTimeoutMs: 90_000 },
);
clusterStarting.catch(() => undefined); // awaited in its test; a failure is reported there
t.teardown(async () => (await clusterStarting.catch(() => undefined))?.stop());

const failing = await startUpstream({
  override: (_req, res) => {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end('upstream broke');
    return true;
  },
});
t.teardown(() => failing.close());
const closedPort = await freePort(); // nothing listens there: a refused connection

const k = await startKeyhole(
  baseYaml(
    redisRevocationYaml(redis) +
      filesProviderYaml(root) +
      httpProviderItem('failing', 'https://failing.test/', `${failing.origin}/`) +
      httpProviderItem('unreachable', 'https://unreachable.test/', `http://127.0.0.1:${closedPort}/`),
  ),
);
t.teardown(() => k.close());
await (k.server.current.revocation as RedisRevocationStore).whenConnected();

// Allowed, denied (no token; out of scope), upstream errors (a 500; a refused connection).
const token = await k.token({ scope: ['local://files/', 'https://failing.test/', 'https://unreachable.test/'] });
const narrow = await k.token({ scope: ['local://other/'] });
const bearer = (tok: string) => ({ authorization: `Bearer ${tok}` });
const made: number[] = [];
for (let i = 0; i < 5; i++) made.push((await k.get(dataUrl('local://files/a.txt'), bearer(token))).status);
made.push((await k.get(dataUrl('local://files/a.txt'))).status);
made.push((await k.get(dataUrl('local://files/a.txt'), bearer(narrow))).status);
made.push((await k.get(dataUrl('https://failing.test/x'), bearer(token))).status);
made.push((await k.get(dataUrl('https://unreachable.test/x'), bearer(token))).status);
// Counted when each response closes: wait until all are, so every later read agrees.
const keyholeText = await until('every request counted', async () => {
  const text = await getText(`${k.admin}/metrics`);
  return total(samples(text, 'keyhole_requests_total')) === made.length ? text : undefined;
});

// The escapes: no label of a running Keyhole carries client text (provider names are
// [a-zA-Z0-9_.-], reasons and statuses are codes), so Keyhole's exposition code gets values
// that need every escape here, through the same Metrics and Counter the server uses.
const odd = new Metrics(false);
odd.recordRequest(ODD, 200, 'allow', 0.004, 10, false);
odd.upstreamErrors.labels(ODD, 'upstream_error').inc(3);
new Counter({ name: 'keyhole_test_escapes_total', help: ODD_HELP, labelNames: ['value'] as const, registry: odd.registry }).labels(ODD).inc(2);
const oddServer: Server = createServer((_req, res) => {
  void odd.registry.metrics().then((body) => {
    res.writeHead(200, { 'content-type': odd.registry.contentType });
    res.end(body);
  });
});
await new Promise<void>((r) => oddServer.listen(0, '127.0.0.1', r));
t.teardown(
  () =>
    new Promise<void>((r) => {
      oddServer.closeAllConnections();
      oddServer.close(() => r());
    }),
);
const oddTarget = `127.0.0.1:${(oddServer.address() as AddressInfo).port}`;
const oddText = await odd.registry.metrics();

t.test('a running Keyhole (Redis revocation, every decision): promtool check metrics', async (t) => {
  t.same(made, [200, 200, 200, 200, 200, 401, 403, 502, 502], 'allowed, denied, upstream errors');
  t.match(keyholeText, /^keyhole_redis_up 1$/m);
  t.match(keyholeText, /^keyhole_revocation_lookups_total\{result="(hit|miss)"\} \d+$/m);
  t.match(keyholeText, /^keyhole_upstream_errors_total\{provider="failing",reason="upstream_status"\} 1$/m);
  t.match(keyholeText, /^keyhole_upstream_errors_total\{provider="unreachable",reason="upstream_error"\} 1$/m);
  t.match(keyholeText, /^keyhole_requests_total\{provider="-",status="401",decision="deny"\} 1$/m);
  t.match(keyholeText, /^keyhole_requests_total\{provider="files",status="403",decision="deny"\} 1$/m);
  t.match(keyholeText, /^keyhole_request_duration_seconds_bucket\{provider="files",le="\+Inf"\} 6$/m);
  await promtoolAccepts(t, keyholeText, 'single Keyhole');
});

t.test('label values and HELP text that need every escape: promtool parses them', async (t) => {
  t.match(oddText, /^keyhole_test_escapes_total\{value="we\\"ird\\\\prov\\nider"\} 2$/m);
  await promtoolAccepts(t, oddText, 'escapes');
});

t.test('promtool itself refuses what breaks the format (so its silence above means something)', async (t) => {
  const broken = await promtool('# HELP a x\n# TYPE a gauge\na{l="un"escaped"} 1\n');
  t.equal(broken.code, 1, 'a parse error');
  t.match(broken.lines.join('\n'), /parsing error/);
  const linted = await promtool('# HELP a_total x\n# TYPE a_total gauge\na_total 1\n');
  t.equal(linted.code, 3, 'a lint finding');
  t.same(linted.lines, ['a_total non-counter metrics should not have "_total" suffix'], 'reported one per line, as ACCEPTED_LINTS spells it');
});

// The cluster: requests spread over both workers, the primary's sum.
const clusterState: { text?: string; admin?: string } = {};

t.test('a two-worker cluster: the primary’s sum passes promtool', async (t) => {
  const c = await clusterStarting;
  // One HTTP/1.1 connection per request, spread over both workers (HTTP/2 would multiplex them onto one).
  const fresh = new Agent({ connect: { ca: readFileSync(testCerts().caCert) }, pipelining: 0, allowH2: false });
  t.teardown(() => fresh.close());
  const tok = await c.token();
  const statuses: number[] = [];
  for (let i = 0; i < 8; i++) statuses.push((await c.get(dataUrl('local://files/a.txt'), { headers: bearer(tok), dispatcher: fresh })).status);
  for (let i = 0; i < 2; i++) statuses.push((await c.get(dataUrl('local://files/a.txt'), { dispatcher: fresh })).status);
  t.same(statuses, [...Array(8).fill(200), 401, 401]);
  const text = await until('the cluster counted every request', async () => {
    const body = await getText(`${c.admin}/metrics`);
    return total(samples(body, 'keyhole_requests_total')) === statuses.length ? body : undefined;
  });
  const workers = new Set(c.logs.filter((l) => l.msg === 'worker ready').map((l) => l.pid));
  t.equal(workers.size, 2, 'two workers');
  t.match(text, /^keyhole_requests_total\{provider="files",status="200",decision="allow"\} 8$/m, 'summed over the workers');
  t.match(text, /^keyhole_request_duration_seconds_count\{provider="files"\} 8$/m);
  t.match(text, /^keyhole_redis_up 1$/m, 'health gauge: the minimum over the processes');
  t.notMatch(text, /process_start_time_seconds/, 'left out of the sum');
  await promtoolAccepts(t, text, 'cluster sum');
  clusterState.text = text;
  clusterState.admin = c.admin;
});

t.test('a real Prometheus server scrapes them and gives back what Keyhole served', async (t) => {
  if (!clusterState.text || !clusterState.admin) return t.fail('the cluster is up (previous test)');
  const promPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-prometheus-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const targets = { keyhole: new URL(k.admin).host, cluster: new URL(clusterState.admin!).host, escapes: oddTarget };
  // The admin listener is plain HTTP on loopback (docs/metrics.md), so no TLS here.
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global: { scrape_interval: 1s, scrape_timeout: 1s }
scrape_configs:
${Object.entries(targets)
  .map(([job, target]) => `  - job_name: ${job}\n    static_configs: [{ targets: ["${target}"] }]\n`)
  .join('')}`,
  );
  const prom: ChildProcess = spawn(
    '/usr/bin/prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let promLog = '';
  prom.stderr!.setEncoding('utf8').on('data', (c: string) => (promLog += c));
  const promExited = new Promise<void>((r) => prom.once('exit', () => r()));
  t.teardown(async () => {
    if (prom.exitCode === null && prom.signalCode === null) prom.kill('SIGKILL');
    await promExited;
  });
  const api = `http://127.0.0.1:${promPort}`;
  const json = async <T>(path: string): Promise<T> => {
    const body = JSON.parse(await getText(api + path)) as { status: string; data: T };
    if (body.status !== 'success') throw new Error(`${path}: ${JSON.stringify(body)}`);
    return body.data;
  };

  interface Target {
    labels: { job: string };
    health: string;
    lastError: string;
  }
  const scraped = await until(
    () => `every target scraped (prometheus log: ${promLog.slice(-1000)})`,
    async () => {
      const { activeTargets } = await json<{ activeTargets: Target[] }>('/api/v1/targets');
      return activeTargets.length === 3 && activeTargets.every((a) => a.health !== 'unknown') ? activeTargets : undefined;
    },
    25_000,
  );
  for (const a of scraped) {
    t.equal(a.health, 'up', `${a.labels.job}: health up`);
    t.equal(a.lastError, '', `${a.labels.job}: no scrape error`);
  }

  interface VectorSample {
    metric: Record<string, string>;
    value: [number, string];
  }
  const query = (q: string) => json<{ resultType: string; result: VectorSample[] }>(`/api/v1/query?query=${encodeURIComponent(q)}`).then((d) => d.result);
  /** Prometheus's series (without job and instance) as a key → value map. */
  const asMap = (result: VectorSample[]) => new Map(result.map((r) => [key(r.metric, ['job', 'instance']), Number(r.value[1])]));
  /** Keyhole's series in the same shape. */
  const served = (series: Series[]) => new Map(series.map((s) => [key({ __name__: s.name, ...s.labels }), s.value]));

  // Counters: every series, the same value (nothing counts any more: the requests are over).
  for (const [job, text] of [['keyhole', keyholeText], ['cluster', clusterState.text!]] as const) {
    const fromProm = asMap(await query(`keyhole_requests_total{job="${job}"}`));
    t.same(fromProm, served(samples(text, 'keyhole_requests_total')), `${job}: keyhole_requests_total as served`);
    t.ok(fromProm.size >= 2, `${job}: ${fromProm.size} labelled series`);
  }

  // A histogram: Prometheus's quantile over the summed buckets, from the buckets Keyhole served.
  const buckets = new Map<number, number>();
  for (const s of samples(keyholeText, 'keyhole_request_duration_seconds_bucket')) {
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  const fromPromBuckets = asMap(await query('sum by (le) (keyhole_request_duration_seconds_bucket{job="keyhole"})'));
  t.equal(fromPromBuckets.size, buckets.size, 'every bucket bound scraped');
  for (const q of [0.5, 0.9]) {
    const [r] = await query(`histogram_quantile(${q}, sum by (le) (keyhole_request_duration_seconds_bucket{job="keyhole"}))`);
    const expected = bucketQuantile(q, [...buckets]);
    t.ok(r && Math.abs(Number(r.value[1]) - expected) < 1e-9, `p${q * 100}: Prometheus ${r?.value[1]}, from the served buckets ${expected}`);
  }

  // The escapes, read back exactly.
  const [escaped] = await query('keyhole_test_escapes_total{job="escapes"}');
  t.equal(escaped?.metric.value, ODD, 'backslash, double quote and line feed in a label value');
  t.equal(escaped?.value[1], '2');
  const [oddErrors] = await query('keyhole_upstream_errors_total{job="escapes"}');
  t.same(oddErrors?.metric, { __name__: 'keyhole_upstream_errors_total', provider: ODD, reason: 'upstream_error', job: 'escapes', instance: oddTarget });
  const [oddCount] = await query('keyhole_request_duration_seconds_count{job="escapes"}');
  t.equal(oddCount?.metric.provider, ODD);
  const meta = await json<Record<string, { type: string; help: string }[]>>('/api/v1/metadata?metric=keyhole_test_escapes_total');
  t.same(meta.keyhole_test_escapes_total, [{ type: 'counter', help: ODD_HELP, unit: '' }], 'HELP with line feed, backslash and quotes');
  const [samplesScraped] = await query('scrape_samples_scraped{job="escapes"}');
  t.equal(Number(samplesScraped?.value[1]), samples(oddText, '[a-z_]+').length, 'every sample line read as one sample');

  // What Prometheus counts about its own scrapes: nothing dropped as duplicate or out of order.
  const own = await getText(`${api}/metrics`);
  for (const name of ['prometheus_target_scrapes_sample_duplicate_timestamp_total', 'prometheus_target_scrapes_sample_out_of_order_total', 'prometheus_target_scrapes_sample_out_of_bounds_total']) {
    t.match(own, new RegExp(`^${name} 0$`, 'm'), `${name} 0`);
  }
  // e.g. "Error on ingesting samples with different value but same timestamp", per scrape pool
  t.same(promLog.split('\n').filter((l) => l.includes('scrape_pool=')), [], 'Prometheus logged no warning about the scrapes');
});
