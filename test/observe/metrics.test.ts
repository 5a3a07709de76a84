// /metrics as a scraper reads it: the text exposition format 0.0.4, checked line by line
// against the format's rules and parsed by an independent parser (parse-prometheus-text-format,
// a port of the Prometheus Python client's parser); every metric in docs/metrics.md with its
// type, labels and help; the duration buckets; the cluster's sum (health gauges: the minimum).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { aggregate, render, type MetricFamily } from '../../src/observe/exposition.ts';
import { Counter, Registry } from '../../src/observe/instruments.ts';
import { Metrics } from '../../src/observe/metrics.ts';

const DURATION_BUCKETS = ['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '10', '60', '+Inf'];

/** The Keyhole metrics' help texts as prom-client 15 exposed them (dashboards and alerts may quote them). */
const HELP: Record<string, string> = {
  keyhole_requests_total: 'Data requests by provider, HTTP status and decision (allow, deny, error)',
  keyhole_request_duration_seconds: 'Data request duration until the response ended or was aborted',
  keyhole_bytes_sent_total: 'Body bytes relayed to clients',
  keyhole_authorize_decisions_total: 'Decisions answered to a data plane on /v1/authorize, by provider, HTTP status and decision (allow, deny, error)',
  keyhole_upstream_errors_total: 'Upstream failures by provider and reason code',
  keyhole_token_failures_total: 'Refused tokens by reason code',
  keyhole_token_cache_total: 'Verified-token cache lookups (hit: no signature check needed)',
  keyhole_revocation_store_up: '1 when the revocation store answers, 0 when Keyhole fails closed',
  keyhole_aborted_responses_total: 'Data responses that ended before completion (client left or upstream died)',
  keyhole_revocation_lookups_total: 'Revocation checks by result: hit (answered from the replica cache), miss (asked Redis)',
  keyhole_revocation_unavailable_total: 'Revocation checks Redis could not answer, by action: denied (fail closed, 503) or allowed (onRedisError: allow)',
  keyhole_revocation_invalidations_total: 'Revocations received over Redis pub/sub from any replica',
  keyhole_redis_up: '1 while the Redis connections for revocation are up, 0 while they are not (absent without Redis)',
  keyhole_audit_stream_written_total: 'Audit events written to the Redis stream',
  keyhole_audit_stream_dropped_total: 'Audit events dropped because the in-process buffer for the Redis stream was full',
  keyhole_build_info: 'Always 1: the Keyhole version, the Node.js that runs it and the git commit it was built from',
  keyhole_tls_certificate_not_after_seconds: 'When the certificate a listener serves stops being valid (notAfter), Unix seconds: alert well before it (a renewed file is picked up without a restart)',
  keyhole_config_reloads_total: 'Configuration reloads (SIGHUP, POST /admin/reload) by result: ok (applied) or refused (the running configuration stayed)',
  keyhole_requests_in_flight: 'Requests on the data listener being answered now (a stream counts until its last byte)',
  keyhole_cloud_credentials_up: '1 while a cloud provider has usable credentials from its identity (role, delegation key, signBlob), 0 while it has none (absent before the first attempt)',
  keyhole_cloud_credential_fetches_total: 'Credentials fetched from a cloud identity service (STS sessions, user delegation keys, signBlob signatures), by result',
};

/** docs/metrics.md's catalog: name → type and label names. */
function documented(): Map<string, { type: string; labels: string[] }> {
  const doc = readFileSync(join(import.meta.dirname, '../../docs/metrics.md'), 'utf8');
  const rows = new Map<string, { type: string; labels: string[] }>();
  for (const m of doc.matchAll(/^\| `(keyhole_[a-z_]+)` \| (counter|gauge|histogram) \| ([^|]*) \|/gm)) {
    // "`provider`, `status`, `decision` (`allow`, `deny`, `error`)": the names, not the values in parentheses
    rows.set(m[1]!, { type: m[2]!, labels: [...m[3]!.replace(/\([^)]*\)/g, '').matchAll(/`([a-z_]+)`/g)].map((l) => l[1]!) });
  }
  return rows;
}

/** A family as a scraper sees it. */
interface Family {
  help?: string;
  type?: string;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABELS = '\\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*",?)*\\}';
// Go's ParseFloat: NaN and [+-]Inf(inity) in any case, decimal or exponent notation
const VALUE = '(?:[nN][aA][nN])|[+-]?[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?';
const goFloat = (v: string) => (/^nan$/i.test(v) ? NaN : /inf/i.test(v) ? (v.startsWith('-') ? -Infinity : Infinity) : Number(v));
const SAMPLE = new RegExp(`^(${NAME})(${LABELS})? (${VALUE})$`);
const unescape = (s: string) => s.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));

/**
 * A parser for the text format written from its rules (exposition_formats.md, "Text format
 * details"), not from src/: lines end in a line feed; a family's HELP and TYPE come once each,
 * before its samples; its lines are contiguous; its samples are named after it (a histogram's:
 * _bucket, _sum, _count); label values escape backslash, double quote and line feed; every
 * histogram series has an le="+Inf" bucket equal to its _count. Collects what breaks a rule.
 */
function parseExposition(text: string): { families: Map<string, Family>; problems: string[] } {
  const problems: string[] = [];
  const families = new Map<string, Family>();
  if (!text.endsWith('\n')) problems.push('the last line does not end with a line feed');
  const ended = new Set<string>();
  let current: string | undefined;
  const enter = (name: string) => {
    if (name === current) return;
    if (current !== undefined) ended.add(current);
    if (ended.has(name)) problems.push(`${name}: its lines are not contiguous`);
    current = name;
    if (!families.has(name)) families.set(name, { samples: [] });
  };
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue; // empty lines are ignored
    const meta = new RegExp(`^# (HELP|TYPE) (${NAME}) (.*)$`).exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      enter(name);
      const f = families.get(name)!;
      if (f.samples.length > 0) problems.push(`${name}: ${kind} after its samples`);
      if (kind === 'HELP') {
        if (f.help !== undefined) problems.push(`${name}: two HELP lines`);
        if (/\\(?![\\n])/.test(rest)) problems.push(`${name}: HELP has a bad escape`);
        f.help = unescape(rest);
      } else {
        if (f.type !== undefined) problems.push(`${name}: two TYPE lines`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) problems.push(`${name}: TYPE ${rest}`);
        f.type = rest;
      }
      continue;
    }
    if (line.startsWith('#')) continue; // a comment
    const m = SAMPLE.exec(line);
    if (!m) {
      problems.push(`not a sample line: ${JSON.stringify(line)}`);
      continue;
    }
    const [, name, rawLabels, rawValue] = m as unknown as [string, string, string | undefined, string];
    const base = ['_bucket', '_sum', '_count'].map((x) => (name.endsWith(x) ? name.slice(0, -x.length) : '')).find((b) => b && families.get(b)?.type === 'histogram');
    enter(base ?? name);
    const labels: Record<string, string> = {};
    for (const l of (rawLabels ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      if (l[1]! in labels) problems.push(`${name}: label ${l[1]} twice`);
      labels[l[1]!] = unescape(l[2]!);
    }
    families.get(base ?? name)!.samples.push({ name, labels, value: goFloat(rawValue) });
  }
  for (const [name, f] of families) {
    if (f.type !== 'histogram') continue;
    const key = (labels: Record<string, string>) => JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort());
    const inf = new Map(f.samples.filter((s) => s.name === `${name}_bucket` && s.labels.le === '+Inf').map((s) => [key(s.labels), s.value]));
    for (const c of f.samples.filter((s) => s.name === `${name}_count`)) if (inf.get(key(c.labels)) !== c.value) problems.push(`${name}${key(c.labels)}: le="+Inf" bucket ${inf.get(key(c.labels))} != _count ${c.value}`);
  }
  return { families, problems };
}

/** One histogram series: its buckets (le → cumulative count), _sum and _count. */
function histogram(f: Family, labels: Record<string, string>) {
  const match = (s: { labels: Record<string, string> }) => Object.entries(labels).every(([k, v]) => s.labels[k] === v);
  const of = (suffix: string) => f.samples.filter((s) => s.name.endsWith(suffix) && match(s));
  return { buckets: of('_bucket').map((s) => [s.labels.le, s.value] as const), sum: of('_sum')[0]?.value, count: of('_count')[0]?.value };
}

/** A Metrics with one of everything counted; the provider name needs every escape. */
const ODD = 'we"ird\\prov\nider';
function busyMetrics(): Metrics {
  const m = new Metrics();
  m.recordRequest('files', 200, 'allow', 0.003, 100, false);
  m.recordRequest('files', 200, 'allow', 0.03, 50, false);
  m.recordRequest('files', 502, 'error', 75, 0, true);
  m.recordRequest(ODD, 403, 'deny', 0.0005, 0, false);
  m.requests.labels('-', '401', 'deny').inc();
  m.upstreamErrors.labels(ODD, 'upstream_error').inc();
  m.authorizeDecisions.labels('files', '200', 'allow').inc();
  m.tokenFailures.labels('token_expired').inc(2);
  m.countCache(true);
  m.countCache(false);
  m.revocationLookups.labels('hit').inc();
  m.revocationUnavailable.labels('denied').inc();
  m.revocationInvalidations.inc();
  m.auditStreamWritten.inc(3);
  m.auditStreamDropped.inc();
  m.redisProbe = () => true;
  m.credentialsProbe = () => [[ODD, { up: true, fetches: { ok: 2, failed: 1 } }]];
  m.certificateProbe = () => [['data', 1_893_456_000]];
  m.inFlightProbe = () => 3;
  m.configReloads.labels('ok').inc();
  return m;
}

t.test('the format checker itself catches what breaks the rules', async (t) => {
  const bad = (text: string, problem: RegExp) => t.match(parseExposition(text).problems.join('\n'), problem, JSON.stringify(text));
  bad('# TYPE a gauge\na{l="x"y"} 1\n', /not a sample line/);
  bad('# TYPE a gauge\na{l="x\\q"} 1\n', /not a sample line/);
  bad('# TYPE a gauge\na 1', /line feed/);
  bad('# TYPE a gauge\na 1\n# HELP a late\n', /HELP after its samples/);
  bad('# TYPE a gauge\n# TYPE a counter\na 1\n', /two TYPE lines/);
  bad('# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n', /a: its lines are not contiguous/);
  bad('# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', /le="\+Inf" bucket undefined != _count 1/);
  bad('# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n', /le="\+Inf" bucket 2 != _count 1/);
  t.same(parseExposition('# HELP a x\\ny\n# TYPE a gauge\na{l="q\\"\\\\\\n"} -Inf\n').families.get('a'), { help: 'x\ny', type: 'gauge', samples: [{ name: 'a', labels: { l: 'q"\\\n' }, value: -Infinity }] });
});

t.test('the exposition keeps the text format rules; every documented metric with its type, labels, help', async (t) => {
  const m = busyMetrics();
  const text = await m.registry.metrics();
  const { families, problems } = parseExposition(text);
  t.same(problems, [], 'no line breaks the text format rules');
  t.equal(m.registry.contentType, 'text/plain; version=0.0.4; charset=utf-8');

  const docs = documented();
  t.ok(docs.size >= 14, `${docs.size} metrics in docs/metrics.md`);
  for (const [name, row] of docs) {
    const f = families.get(name);
    t.ok(f, `${name} is exposed`);
    if (!f) continue;
    t.equal(f.type, row.type, `${name} is a ${row.type}`);
    t.equal(f.help, HELP[name], `${name} keeps its help text`);
    t.ok(f.samples.length > 0, `${name} has samples`);
    for (const s of f.samples) t.same(Object.keys(s.labels).filter((l) => l !== 'le').sort(), [...row.labels].sort(), `${s.name} has the documented labels`);
  }
  t.same([...families.keys()].filter((n) => n.startsWith('keyhole_') && !docs.has(n) && !n.startsWith('keyhole_process_') && !n.startsWith('keyhole_nodejs_')), [], 'nothing undocumented');

  const requests = families.get('keyhole_requests_total')!.samples;
  t.same(requests.find((s) => s.labels.provider === 'files' && s.labels.status === '200'), { name: 'keyhole_requests_total', labels: { provider: 'files', status: '200', decision: 'allow' }, value: 2 }, 'tallies flushed at scrape time');
  t.equal(requests.find((s) => s.labels.provider === '-')?.value, 1, 'counted directly, beside the tallies');
  t.equal(families.get('keyhole_upstream_errors_total')!.samples[0]!.labels.provider, ODD, 'backslash, double quote and line feed survive in a label value');
  t.match(text, /^keyhole_upstream_errors_total\{provider="we\\"ird\\\\prov\\nider",reason="upstream_error"\} 1$/m);

  const duration = histogram(families.get('keyhole_request_duration_seconds')!, { provider: 'files' });
  t.same(duration.buckets.map(([le]) => le), DURATION_BUCKETS, 'the duration buckets, then +Inf');
  t.same(duration.buckets.map(([, n]) => n), [0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3], 'cumulative');
  t.equal(duration.count, 3);
  t.equal(duration.sum, 0.003 + 0.03 + 75);

  const second = await m.registry.metrics();
  t.match(second, /^keyhole_requests_total\{provider="files",status="200",decision="allow"\} 2$/m, 'a second scrape counts nothing twice');
  t.match(second, /^keyhole_request_duration_seconds_count\{provider="files"\} 3$/m, 'histograms are cumulative');
});

t.test('keyhole_redis_up is absent without Redis, not 0 ("Redis unreachable")', async (t) => {
  const m = new Metrics(false);
  t.notMatch(await m.registry.metrics(), /^keyhole_redis_up /m, 'no sample while no Redis store is set up');
  let up = false;
  m.redisProbe = () => up;
  t.match(await m.registry.metrics(), /^keyhole_redis_up 0$/m);
  up = true;
  t.match(await m.registry.metrics(), /^keyhole_redis_up 1$/m);
  m.redisProbe = undefined;
  t.notMatch(await m.registry.metrics(), /^keyhole_redis_up /m, 'gone again once the store is closed');
});

t.test('process metrics, named as client libraries name them', async (t) => {
  const m = new Metrics(true);
  // One full collection, forced (allocating garbage does not always bring one about within
  // a test); the GC observer hears of it a turn later.
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  // The event-loop delay sampler (a 10 ms libuv timer, due before this one) records at least once.
  await new Promise((r) => setTimeout(r, 30));
  const { families: f, problems } = parseExposition(await m.registry.metrics());
  t.same(problems, []);
  const value = (name: string) => f.get(name)?.samples[0]?.value ?? NaN;
  for (const name of ['process_cpu_user_seconds_total', 'process_cpu_system_seconds_total', 'process_cpu_seconds_total']) t.equal(f.get(`keyhole_${name}`)?.type, 'counter', name);
  t.ok(value('keyhole_process_cpu_seconds_total') > 0);
  t.ok(value('keyhole_process_resident_memory_bytes') > 10 * 2 ** 20, 'resident memory in bytes');
  t.ok(value('keyhole_process_virtual_memory_bytes') >= value('keyhole_process_resident_memory_bytes'));
  t.ok(value('keyhole_process_heap_bytes') > 0);
  t.ok(value('keyhole_process_open_fds') > 2);
  t.ok(value('keyhole_process_max_fds') >= value('keyhole_process_open_fds'));
  t.ok(Math.abs(value('keyhole_process_start_time_seconds') - (Date.now() / 1000 - process.uptime())) < 5, 'start time in seconds since the epoch');
  t.ok(value('keyhole_nodejs_eventloop_lag_seconds') >= 0);
  for (const s of ['min', 'max', 'mean', 'p50', 'p90', 'p99']) t.ok(value(`keyhole_nodejs_eventloop_lag_${s}_seconds`) > 0, `lag ${s}`);
  t.ok(value('keyhole_nodejs_heap_size_used_bytes') > 0);
  t.ok(value('keyhole_nodejs_heap_size_total_bytes') >= value('keyhole_nodejs_heap_size_used_bytes'));
  t.ok(f.get('keyhole_nodejs_heap_space_size_used_bytes')!.samples.some((s) => s.labels.space === 'old'), 'heap spaces by name');
  t.ok(value('keyhole_nodejs_active_resources_total') > 0);
  t.same(f.get('keyhole_nodejs_version_info')!.samples[0]!.labels, { version: process.version, major: process.versions.node.split('.')[0], minor: process.versions.node.split('.')[1], patch: process.versions.node.split('.')[2] });
  const gc = f.get('keyhole_nodejs_gc_duration_seconds');
  t.equal(gc?.type, 'histogram');
  t.ok(gc!.samples.some((s) => s.name.endsWith('_count') && s.value > 0 && ['major', 'minor', 'incremental', 'weakcb'].includes(s.labels.kind ?? '')), 'collections counted by kind');
  t.same(histogram(gc!, { kind: gc!.samples[0]!.labels.kind! }).buckets.map(([le]) => le), ['0.001', '0.01', '0.1', '1', '2', '5', '+Inf']);
});

t.test('the cluster sum: counters and histograms add up, health gauges take the worst', async (t) => {
  const a = busyMetrics();
  const b = busyMetrics();
  b.revocationProbe = () => false;
  const parts = [await a.registry.getMetricsAsJSON(), await b.registry.getMetricsAsJSON()];
  const text = render(JSON.parse(JSON.stringify(aggregate(parts))) as MetricFamily[]); // as it comes over IPC
  t.same(parseExposition(text).problems, []);
  t.match(text, /^keyhole_requests_total\{provider="files",status="200",decision="allow"\} 4$/m);
  t.match(text, /^keyhole_request_duration_seconds_bucket\{provider="files",le="\+Inf"\} 6$/m);
  t.match(text, /^keyhole_request_duration_seconds_count\{provider="files"\} 6$/m);
  t.match(text, /^keyhole_audit_stream_written_total 6$/m);
  t.match(text, /^keyhole_revocation_store_up 0$/m, 'one process failing closed shows');
  t.match(text, /^keyhole_redis_up 1$/m);
  t.notMatch(text, /process_start_time_seconds/, 'start times do not add up: left out');
  t.match(text, new RegExp(`^keyhole_nodejs_version_info\\{version="${process.version.replace(/\./g, '\\.')}",[^}]*\\} 1$`, 'm'), 'version info once, not summed');
  const rss = (s: string) => Number(/^keyhole_process_resident_memory_bytes (\S+)$/m.exec(s)?.[1]);
  t.ok(rss(text) > rss(await a.registry.metrics()), 'resident memory summed over the processes');
});

t.test('counters refuse what would corrupt a series', async (t) => {
  const registry = new Registry();
  const c = new Counter({ name: 'x_total', help: 'x', labelNames: ['a'] as const, registry });
  t.throws(() => c.labels('1', '2'), /takes 1 label value/);
  t.throws(() => c.labels('1').inc(-1), RangeError);
  t.throws(() => c.labels('1').inc(NaN), RangeError);
  t.throws(() => c.inc(), /has labels/);
  t.throws(() => new Counter({ name: 'x_total', help: 'again', registry }), /registered twice/);
  t.throws(() => new Counter({ name: 'bad-name', help: 'x', registry }), /invalid metric name/);
  t.throws(() => new Counter({ name: 'y_total', help: 'x', labelNames: ['__reserved'] as const, registry }), /invalid label name/);
  const plain = new Counter({ name: 'z_total', help: 'line one\nback\\slash', registry });
  t.equal(await registry.metrics(), '# HELP x_total x\n# TYPE x_total counter\nx_total{a="1"} 0\n# HELP z_total line one\\nback\\\\slash\n# TYPE z_total counter\nz_total 0\n', 'an unlabelled counter shows 0 before it counts; HELP escapes \\ and line feed');
  plain.inc(0.5);
  t.match(await registry.metrics(), /^z_total 0\.5$/m);
});
