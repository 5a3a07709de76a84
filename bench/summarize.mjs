// Turns bench/.work/raw.jsonl (one JSON object per measurement) into bench/RESULTS.md and
// bench/results.json: medians over rounds, ratios, the issue's targets met or not with the
// reason, the anchor figures for comparison, memory flatness, workers, presign, profile.
// Usage: node summarize.mjs RAW.jsonl RESULTS.md results.json
import { readFileSync, writeFileSync } from 'node:fs';

const [rawFile, mdFile, jsonFile] = process.argv.slice(2);
// A line that does not parse (an empty field written by an older harness) is repaired or skipped, never fatal.
const lines = readFileSync(rawFile, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => {
    for (const text of [l, l.replace(/:(?=[,}])/g, ':null')]) {
      try {
        return JSON.parse(text);
      } catch {
        /* try the repair */
      }
    }
    process.stderr.write(`summarize: skipping an unreadable line: ${l.slice(0, 120)}\n`);
    return null;
  })
  .filter((l) => l !== null);
const of = (type) => lines.filter((l) => l.type === type);
const meta = of('meta')[0] ?? {};
const end = of('end')[0] ?? {};

const LABEL = {
  direct: 'direct to upstream (the limit)',
  nginx: 'nginx proxy_pass, upstream keep-alive',
  'nginx-authreq': 'nginx + auth_request → jose verifier',
  'nginx-authz': 'nginx auth_request → Keyhole /v1/authorize (deploy/authorizer)',
  'caddy-authz': 'Caddy forward_auth → Keyhole /v1/authorize (deploy/authorizer)',
  caddy: 'Caddy reverse_proxy (no auth)',
  'http-proxy': 'node http-proxy (no auth)',
  fastify: '@fastify/http-proxy (no auth)',
  undici: 'minimal undici proxy (no auth)',
  'undici-dispatch': 'undici dispatch floor (no auth, no audit, no metrics)',
  'keyhole-base': 'Keyhole baseline build (BASE_REF), same config',
  keyhole: '**Keyhole**, all security on',
  'nginx-tls': 'nginx proxy_pass, TLS',
  'keyhole-tls': '**Keyhole**, TLS, all security on',
  'keyhole-w2': '**Keyhole** `workers: 2` (cpu0+cpu1)',
  'keyhole-prof': 'Keyhole under --cpu-prof',
  'keyhole-limits': '**Keyhole**, limits on (Redis, local shares)',
  'keyhole-limits-rt': '**Keyhole**, limits on (Redis round trip per request)',
};
const ORDER = ['direct', 'nginx', 'nginx-authreq', 'nginx-authz', 'caddy', 'caddy-authz', 'http-proxy', 'fastify', 'undici', 'undici-dispatch', 'keyhole-base', 'keyhole', 'keyhole-limits', 'keyhole-limits-rt', 'keyhole-w2', 'nginx-tls', 'keyhole-tls'];
/** Authorizer mode: a data plane pumping the bytes, a Keyhole process deciding (docs/authorizer.md). */
const AUTHZ = ['nginx-authz', 'caddy-authz'];
/** The Node proxies Keyhole is measured against (none of them checks a token). */
const NODE_PEERS = ['http-proxy', 'fastify', 'undici', 'undici-dispatch'];

// The issue's anchors (medians seen with the same pinning): 1 KiB req/s, 64 KiB req/s, 100 MiB MB/s, peak RSS MB.
const ANCHORS = {
  nginx: { '1k': 69_800, '64k': 22_400, '100m': 926 },
  'nginx-authreq': { '1k': 11_600, '64k': 8_300, '100m': 896 },
  caddy: { '1k': 12_900, '64k': 10_800, '100m': 1452 },
  'http-proxy': { '1k': 12_284, '64k': 7_923, '100m': 662 },
  fastify: { '1k': 11_778, '64k': 6_805, '100m': 711 },
  undici: { '1k': 15_900, '64k': 8_600, '100m': 819, rss: 147 },
  direct: { '1k': 84_700, '64k': 49_000, '100m': 1569 },
};

const median = (v) => {
  if (v.length === 0) return null;
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const runs = of('run').filter((r) => r.round > 0);
const errorsOf = (r) => r.err_connect + r.err_read + r.err_write + r.err_status + r.err_timeout;
const rps = (r) => r.requests / (r.duration_us / 1e6);
const mbs = (r) => r.bytes / (r.duration_us / 1e6) / 1e6;

/** Per contender × object: medians over rounds. */
function stats(c, o) {
  const rs = runs.filter((r) => r.contender === c && r.object === o);
  if (rs.length === 0) return null;
  const pick = (f) => rs.map(f).filter((x) => x !== null && x !== undefined);
  const v = pick(rps);
  return {
    n: rs.length,
    rps: median(v),
    rps_min: Math.min(...v),
    rps_max: Math.max(...v),
    mbs: median(pick(mbs)),
    mbs_min: Math.min(...pick(mbs)),
    mbs_max: Math.max(...pick(mbs)),
    p50_ms: median(pick((r) => r.p50_us / 1000)),
    p99_ms: median(pick((r) => r.p99_us / 1000)),
    cpu_pct: median(pick((r) => r.cpu_pct)),
    // requests per CPU-second of the contender: its one-core capacity, less sensitive to sharing
    per_cpu_s: median(pick((r) => (r.cpu_pct ? rps(r) / (r.cpu_pct / 100) : null))),
    mb_per_cpu_s: median(pick((r) => (r.cpu_pct ? mbs(r) / (r.cpu_pct / 100) : null))),
    rss_peak_mb: pick((r) => r.rss_peak_kb).length ? Math.max(...pick((r) => r.rss_peak_kb)) / 1024 : null,
    errors: rs.reduce((s, r) => s + errorsOf(r), 0),
    requests: rs.reduce((s, r) => s + r.requests, 0),
  };
}
if (meta.base_commit) LABEL['keyhole-base'] = `Keyhole baseline build (${meta.base_commit}), same config`;
const contenders = ORDER.filter((c) => runs.some((r) => r.contender === c));
const table = {};
for (const c of contenders) {
  table[c] = {};
  for (const o of ['1k', '64k', '1m', '100m']) {
    const s = stats(c, o);
    if (s) table[c][o] = s;
  }
}
const wholeRunPeak = {};
for (const c of contenders) {
  const h = of('contender_end').filter((e) => e.contender === c).map((e) => e.hwm_kb / 1024);
  const idle = of('contender_end').filter((e) => e.contender === c && e.idle_rss_kb).map((e) => e.idle_rss_kb / 1024);
  if (h.length) wholeRunPeak[c] = { max: Math.max(...h), median: median(h), idle: median(idle) };
}

const nameOf = { '1k': '1 KiB', '64k': '64 KiB', '1m': '1 MiB', '100m': '100 MiB' };
const fmt = (x, d = 0) => (x === null || x === undefined || Number.isNaN(x) ? '—' : x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }));
const ratio = (a, b) => (a && b ? a / b : null);
const get = (c, o, k) => table[c]?.[o]?.[k] ?? null;

const md = [];
md.push('# Keyhole benchmark results');
md.push('');
md.push('Written by `npm run bench` (bench/run.sh → bench/summarize.mjs); the raw measurements are in `results.json`.');
md.push('');
md.push(`- Run: ${meta.started ?? '?'} → ${end.finished ?? '?'}${meta.quick ? ' — **QUICK mode** (one short round: a smoke run, not figures to quote)' : ''}`);
md.push(`- Machine: ${meta.cpus} × ${meta.cpu_model}, Linux ${meta.kernel}; Node ${meta.node}; ${meta.nginx}; ${meta.wrk}`);
md.push(`- Keyhole: HEAD ${meta.git}; measured build: ${meta.built_from || '?'}${meta.built_from === 'working tree' && meta.dirty && meta.dirty !== '0' ? ` (${meta.dirty} uncommitted file(s) under src/)` : ''}; run as \`node ${meta.keyhole_node_flags ? `${meta.keyhole_node_flags} ` : ''}cli.js serve --config …\``);
md.push(`- Pinning: contender (all its processes) alone on cpu${meta.proxy_cpu}; upstream nginx and \`wrk -t1\` on cpu${meta.load_cpu} (\`taskset\`).`);
md.push(`- Load: wrk, ${meta.conns} connections × ${meta.duration_s} s for 1 KiB / 64 KiB / 1 MiB, ${meta.c100} concurrent downloads × ${meta.d100_s} s for 100 MiB; ${meta.rounds} round(s), every contender started fresh each round, order reversed every other round; figures are medians over rounds (min–max in brackets), ratios are ratios of medians.`);
// The bench itself keeps both cores busy (contender on one, wrk and the upstream on the
// other): the load average at the end is ~2 by construction. Only the start tells whether
// other work was running.
const load1 = Number(String(meta.loadavg_start ?? '0').split(' ')[0]);
if (load1 > 1) {
  md.push(`- **NOISY RUN: the 1-minute load average was ${load1} on ${meta.cpus} cores when the run started** — other work shared the cores, so absolute figures and p99 are not the product's; rerun \`npm run bench\` on a quiet machine before quoting anything.`);
}
md.push(`- Load average at start / end: ${meta.loadavg_start} / ${end.loadavg_end ?? '?'} (at the start, anything well above 0 means other work was running; at the end it is the bench's own two busy cores).`);
md.push('- Tokens: 1,024 distinct HS256 session tokens (distinct `sub`, `jti`), cycled request by request, so every connection carries many tokens and Keyhole\'s verified-token cache holds 1,024 entries, not one hot one. The nginx/undici contenders get the same headers (and ignore them).');
md.push('- Keyhole config (bench/conf/keyhole.yaml.in): token verified (HS256 + iss/aud/exp/sub), scope checked, revocation in memory holding entries (a revoked subject and jti), one pino audit line per request written to a file, Prometheus metrics counted, `http` provider injecting BasicAuth.');
md.push('');

// --- before/after: the baseline build (BASE_REF) beside the current one, same run
const beforeAfter = [];
if (contenders.includes('keyhole-base')) {
  const base = `${meta.base_commit || '?'}${meta.base_ref && meta.base_ref !== meta.base_commit ? ` (${meta.base_ref})` : ''}`;
  const current = meta.current_commit || meta.built_from || '?';
  const short = (t) => (t && t.length > 90 ? `${t.slice(0, 89)}…` : t);
  const ba = [];
  ba.push('## Before/after: baseline build vs current build');
  ba.push('');
  ba.push(`- Base: ${base}${meta.base_subject ? ` — ${short(meta.base_subject)}` : ''}`);
  ba.push(`- Current: ${current}${meta.built_from === 'working tree' ? ` (${meta.dirty} uncommitted file(s) under src/)` : meta.current_subject ? ` — ${short(meta.current_subject)}` : ''}`);
  ba.push(`- Same YAML template, tokens, pinning and load for both; ${meta.rounds} round(s), order alternating round by round${meta.rounds % 2 ? ' (odd: the build that went first in round 1 went first once more)' : ''}. Load average at start / end: ${meta.loadavg_start ?? '?'} / ${end.loadavg_end ?? '?'}.`);
  if (load1 > 1) ba.push(`- **NOISY RUN** (1-minute load ${load1} on ${meta.cpus} cores at the start): other work shared the cores; a ratio from this run is not a figure to quote.`);
  ba.push('');
  ba.push('| object | base req/s (min–max) | current req/s (min–max) | current/base | base MB/s | current MB/s | per CPU-s base / current | p99 ms base / current | errors base / current | n |');
  ba.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const o of ['1k', '64k', '1m', '100m']) {
    const b = table['keyhole-base']?.[o];
    const c = table.keyhole?.[o];
    if (!b && !c) continue;
    // 100 MiB is a throughput figure (few, partly finished downloads): compare MB/s there
    const key = o === '100m' ? 'mbs' : 'rps';
    const r = ratio(c?.[key], b?.[key]);
    beforeAfter.push({ object: o, compared: key, base: b ?? null, current: c ?? null, ratio: r });
    const range = (x) => (!x ? '—' : key === 'mbs' ? `${fmt(x.mbs)} MB/s (${fmt(x.mbs_min)}–${fmt(x.mbs_max)})` : `${fmt(x.rps)} (${fmt(x.rps_min)}–${fmt(x.rps_max)})`);
    ba.push(`| ${nameOf[o]} | ${range(b)} | ${range(c)} | **${fmt(r, 3)}×** | ${fmt(b?.mbs, 1)} | ${fmt(c?.mbs, 1)} | ${key === 'mbs' ? `${fmt(b?.mb_per_cpu_s)} / ${fmt(c?.mb_per_cpu_s)} MB` : `${fmt(b?.per_cpu_s)} / ${fmt(c?.per_cpu_s)} req`} | ${fmt(b?.p99_ms, 2)} / ${fmt(c?.p99_ms, 2)} | ${b?.errors ?? '—'} / ${c?.errors ?? '—'} | ${b?.n ?? 0} / ${c?.n ?? 0} |`);
  }
  ba.push('');
  ba.push('current/base is the ratio of the medians (MB/s at 100 MiB, req/s otherwise): above 1 the current build is faster. Differences of a few per cent are within the round-to-round spread that min–max shows; the figure per CPU-second of the proxy process (req, or MB at 100 MiB) is the less noise-sensitive one.');
  ba.push('');
  md.push(...ba);
  // on the console too: the figure a before/after run is for
  process.stdout.write(`${ba.join('\n')}\n`);
}

// --- limits: the cost of limits on (Redis), beside limits off, same run
const limitsCost = [];
if (contenders.some((c) => c.startsWith('keyhole-limits'))) {
  const li = [];
  li.push('## Limits: the cost of limits on (Redis over TLS) beside limits off');
  li.push('');
  li.push('- Same YAML, tokens, pinning and load as **Keyhole**, plus `limits:` (bench/lib.sh `limits_yaml`): per subject a rate (50/s, burst 100), 16 concurrent, bytes per day and per hour, distinct objects per day; per provider a byte quota — all checked and counted on every request, none ever reached (the cost of checking, not of refusing). Redis 7 over TLS with client certificates, on the load side\'s core.');
  li.push('- **local shares** (the default): a replica spends rate tokens and quota views it keeps in step with Redis, written and read in one Lua call per sync (`limits.redis`: share 0.125, sync 100 ms, stale 2 s, linger 1 s). **round trip per request**: `share: 0, stale: 0, linger: 0`, every request waits for Redis.');
  li.push(`- Load average at start / end: ${meta.loadavg_start ?? '?'} / ${end.loadavg_end ?? '?'}${load1 > 1 ? ` — **NOISY RUN** (1-minute load ${load1} at the start)` : ''}.`);
  li.push('');
  li.push('| object | limits off req/s (min–max) | local shares req/s (min–max) | local / off | round trip req/s (min–max) | round trip / off | req per CPU-s off / local / round trip | p99 ms off / local / round trip | errors off / local / round trip | n |');
  li.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const o of ['1k', '64k']) {
    const off = table.keyhole?.[o];
    const on = table['keyhole-limits']?.[o];
    const rt = table['keyhole-limits-rt']?.[o];
    if (!off && !on && !rt) continue;
    const range = (x) => (!x ? '—' : `${fmt(x.rps)} (${fmt(x.rps_min)}–${fmt(x.rps_max)})`);
    limitsCost.push({ object: o, off: off ?? null, local: on ?? null, roundTrip: rt ?? null, localRatio: ratio(on?.rps, off?.rps), roundTripRatio: ratio(rt?.rps, off?.rps) });
    li.push(`| ${nameOf[o]} | ${range(off)} | ${range(on)} | **${fmt(ratio(on?.rps, off?.rps), 3)}×** | ${range(rt)} | **${fmt(ratio(rt?.rps, off?.rps), 3)}×** | ${fmt(off?.per_cpu_s)} / ${fmt(on?.per_cpu_s)} / ${fmt(rt?.per_cpu_s)} | ${fmt(off?.p99_ms, 2)} / ${fmt(on?.p99_ms, 2)} / ${fmt(rt?.p99_ms, 2)} | ${off?.errors ?? '—'} / ${on?.errors ?? '—'} / ${rt?.errors ?? '—'} | ${off?.n ?? 0} / ${on?.n ?? 0} / ${rt?.n ?? 0} |`);
  }
  const decided = of('limits');
  if (decided.length) {
    li.push('');
    li.push('How the limits decided (from each contender\'s /metrics at the end of its round, every object): `local` without waiting, `store` after asking Redis; refused must be 0.');
    li.push('');
    li.push('| round | contender | decided locally | after asking Redis | share local | refused | store unavailable |');
    li.push('|---|---|---|---|---|---|---|');
    for (const d of decided) li.push(`| ${d.round} | ${d.contender} | ${fmt(d.local)} | ${fmt(d.store)} | ${fmt(d.local + d.store ? (100 * d.local) / (d.local + d.store) : null, 1)} % | ${fmt(d.refused)} | ${fmt(d.unavailable)} |`);
  }
  li.push('');
  li.push('Target (issue 14): limits on cost at most 15 % of throughput at 1 KiB, i.e. local / off ≥ 0.85.');
  li.push('');
  md.push(...li);
  process.stdout.write(`${li.join('\n')}\n`);
}

// --- correctness
const checks = of('check');
if (checks.length) {
  md.push('## Correctness (before measuring)');
  md.push('');
  md.push('Every contender must return the exact bytes of 1 KiB, 64 KiB, 1 MiB and 100 MiB (md5) from an upstream that refuses requests without the injected BasicAuth. Status codes for a tampered token, no token, a revoked token, an out-of-scope URI:');
  md.push('');
  md.push('| contender | bytes exact | tampered token | no token | revoked token (admin revoke answered) | out of scope |');
  md.push('|---|---|---|---|---|---|');
  for (const k of checks) {
    md.push(`| ${LABEL[k.contender] ?? k.contender} | ${k.started === false ? 'did not start' : k.bytes_ok ? 'yes' : '**NO**'} | ${k.bad_token ?? '—'} | ${k.no_token ?? '—'} | ${k.revoked === undefined ? '—' : `${k.revoked === 401 ? 401 : `**${k.revoked}**`}${k.revoke_status ? ` (${k.revoke_status})` : ''}`} | ${k.out_of_scope ?? '—'} |`);
  }
  md.push('');
  md.push('(nginx proxy_pass, Caddy and the Node peers check no token at all: 200 there is by design, they are throughput references. The direct contender sends BasicAuth itself. In the authorizer stacks Keyhole decides and the data plane relays its refusal; the out-of-scope URI is refused before its `local` provider would be, 501 `authorizer_unsupported`.)');
  md.push('');
}

// --- small objects
for (const o of ['1k', '64k', '1m']) {
  const rows = contenders.filter((c) => table[c][o] && !c.endsWith('-tls'));
  if (!rows.length) continue;
  md.push(`## ${nameOf[o]}, ${meta.conns} connections (plain HTTP)`);
  md.push('');
  md.push('| contender | req/s (min–max) | MB/s | p50 ms | p99 ms | × nginx | × direct | CPU % | req per CPU-s | peak RSS MiB | errors | n |');
  md.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const c of rows) {
    const s = table[c][o];
    md.push(`| ${LABEL[c]} | ${fmt(s.rps)} (${fmt(s.rps_min)}–${fmt(s.rps_max)}) | ${fmt(s.mbs, 1)} | ${fmt(s.p50_ms, 2)} | ${fmt(s.p99_ms, 2)} | ${fmt(ratio(s.rps, get('nginx', o, 'rps')), 2)} | ${fmt(ratio(s.rps, get('direct', o, 'rps')), 2)} | ${c === 'direct' ? '—' : fmt(s.cpu_pct)} | ${c === 'direct' ? '—' : fmt(s.per_cpu_s)} | ${fmt(s.rss_peak_mb)} | ${s.errors} | ${s.n} |`);
  }
  md.push('');
}
{
  const o = '100m';
  const rows = contenders.filter((c) => table[c][o]);
  if (rows.length) {
    md.push(`## 100 MiB, ${meta.c100} concurrent downloads (plain HTTP)`);
    md.push('');
    md.push('| contender | MB/s (min–max) | × nginx | × direct | p50 s per download | CPU % | peak RSS MiB | errors | n |');
    md.push('|---|---|---|---|---|---|---|---|---|');
    for (const c of rows) {
      const s = table[c][o];
      md.push(`| ${LABEL[c]} | ${fmt(s.mbs)} (${fmt(s.mbs_min)}–${fmt(s.mbs_max)}) | ${fmt(ratio(s.mbs, get('nginx', o, 'mbs')), 2)} | ${fmt(ratio(s.mbs, get('direct', o, 'mbs')), 2)} | ${s.p50_ms > 0 ? fmt(s.p50_ms / 1000, 2) : '— (none finished)'} | ${c === 'direct' ? '—' : fmt(s.cpu_pct)} | ${fmt(s.rss_peak_mb)} | ${s.errors} | ${s.n} |`);
    }
    md.push('');
  }
}
if (contenders.some((c) => c.endsWith('-tls'))) {
  md.push(`## TLS round: nginx and Keyhole both terminating TLS, ${meta.conns} connections`);
  md.push('');
  md.push('| contender | object | req/s (min–max) | MB/s | p50 ms | p99 ms | × nginx TLS | CPU % | peak RSS MiB | errors | n |');
  md.push('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const c of ['nginx-tls', 'keyhole-tls']) {
    for (const o of ['1k', '64k']) {
      const s = table[c]?.[o];
      if (!s) continue;
      md.push(`| ${LABEL[c]} | ${nameOf[o]} | ${fmt(s.rps)} (${fmt(s.rps_min)}–${fmt(s.rps_max)}) | ${fmt(s.mbs, 1)} | ${fmt(s.p50_ms, 2)} | ${fmt(s.p99_ms, 2)} | ${fmt(ratio(s.rps, get('nginx-tls', o, 'rps')), 2)} | ${fmt(s.cpu_pct)} | ${fmt(s.rss_peak_mb)} | ${s.errors} | ${s.n} |`);
    }
  }
  md.push('');
}
if (Object.keys(wholeRunPeak).length) {
  md.push('## Peak RSS over each contender\'s whole life (VmHWM at the end of a round, summed over its processes)');
  md.push('');
  md.push('| contender | RSS MiB just after start (idle) | peak RSS MiB, max over rounds | median over rounds |');
  md.push('|---|---|---|---|');
  for (const c of contenders) if (wholeRunPeak[c]) md.push(`| ${LABEL[c]} | ${fmt(wholeRunPeak[c].idle)} | ${fmt(wholeRunPeak[c].max)} | ${fmt(wholeRunPeak[c].median)} |`);
  md.push('');
}

// --- audit and metrics proof
const audits = of('audit');
if (audits.length) {
  md.push('## Audit and metrics were on');
  md.push('');
  md.push('| round | contender | audit lines written | requests counted by /metrics | audit log bytes |');
  md.push('|---|---|---|---|---|');
  for (const a of audits) md.push(`| ${a.round} | ${a.contender} | ${fmt(a.audit_lines)} | ${fmt(a.metrics_requests)} | ${fmt(a.log_bytes)} |`);
  md.push('');
}

// --- flatness
const flat = of('flat')[0];
let flatOk = null;
let flatText = 'not measured';
if (flat) {
  const rise = (flat.hwm_after_local_kb - flat.hwm_before_kb) / 1024;
  const complete = flat.http.bytes === 2 ** 31 && flat.local.bytes === 2 ** 31 && flat.http.status === 200 && flat.local.status === 200;
  flatOk = complete && rise <= 8;
  flatText = `peak RSS ${fmt(flat.hwm_before_kb / 1024, 1)} MiB before → ${fmt(flat.hwm_after_http_kb / 1024, 1)} MiB after 2 GiB over http → ${fmt(flat.hwm_after_local_kb / 1024, 1)} MiB after 2 GiB from a local file (rise ${fmt(rise, 1)} MiB${complete ? '' : '; a download was incomplete'})`;
  md.push('## Memory flatness: 2 GiB through Keyhole');
  md.push('');
  md.push('A fresh Keyhole first serves the 1 KiB and 100 MiB loads for a few seconds, then one 2 GiB download from the nginx upstream (`http` provider) and one from a sparse 2 GiB file (`local` provider). VmHWM is the kernel\'s own peak RSS, so any moment of buffering shows.');
  md.push('');
  md.push('| | VmHWM MiB | bytes received | status | seconds | MB/s |');
  md.push('|---|---|---|---|---|---|');
  md.push(`| before | ${fmt(flat.hwm_before_kb / 1024, 1)} | | | | |`);
  md.push(`| after 2 GiB via http | ${fmt(flat.hwm_after_http_kb / 1024, 1)} | ${fmt(flat.http.bytes)} | ${flat.http.status} | ${fmt(flat.http.seconds, 2)} | ${fmt(flat.http.bytes / flat.http.seconds / 1e6)} |`);
  md.push(`| after 2 GiB via local | ${fmt(flat.hwm_after_local_kb / 1024, 1)} | ${fmt(flat.local.bytes)} | ${flat.local.status} | ${fmt(flat.local.seconds, 2)} | ${fmt(flat.local.bytes / flat.local.seconds / 1e6)} |`);
  md.push('');
}

// --- targets
const k1 = get('keyhole', '1k', 'rps');
const targets = [];
const cpuNote = (o) => {
  const cpu = get('keyhole', o, 'cpu_pct');
  return cpu !== null ? `Keyhole used ${fmt(cpu)}% of its core` : '';
};
const profile = of('profile')[0];
const profNote = profile ? `; profile: ${profile.areas.slice(0, 4).map((a) => `${a.area} ${a.pct_busy}%`).join(', ')}` : '';
const target = (name, value, goal, met, reason) => targets.push({ target: name, measured: value, goal, met, reason });
const cmp = (x, g) => (x === null ? null : x >= g);
{
  const r = ratio(k1, get('nginx', '1k', 'rps'));
  const eff = (c) => get(c, '1k', 'per_cpu_s');
  target('1 KiB req/s ≥ 0.30 × nginx proxy_pass', r, 0.3, cmp(r, 0.3), `${fmt(k1)} vs ${fmt(get('nginx', '1k', 'rps'))} req/s; ${cpuNote('1k')}; per CPU-second ${fmt(eff('keyhole'))} vs ${fmt(eff('nginx'))} (${fmt(ratio(eff('keyhole'), eff('nginx')), 2)}×)${profNote}`);
  const a = ratio(k1, get('nginx-authreq', '1k', 'rps'));
  target('1 KiB req/s ≥ 1.8 × nginx + auth_request', a, 1.8, cmp(a, 1.8), `${fmt(k1)} vs ${fmt(get('nginx-authreq', '1k', 'rps'))} req/s; per CPU-second ${fmt(eff('keyhole'))} vs ${fmt(eff('nginx-authreq'))} (${fmt(ratio(eff('keyhole'), eff('nginx-authreq')), 2)}×; nginx worker + verifier together)`);
  const u = ratio(k1, get('undici', '1k', 'rps'));
  target('1 KiB req/s ≥ 1.3 × minimal undici proxy', u, 1.3, cmp(u, 1.3), `${fmt(k1)} vs ${fmt(get('undici', '1k', 'rps'))} req/s; per CPU-second ${fmt(eff('keyhole'))} vs ${fmt(eff('undici'))} (${fmt(ratio(eff('keyhole'), eff('undici')), 2)}×; the undici proxy checks no token)`);
  const floor = get('undici-dispatch', '1k', 'rps');
  const f = ratio(k1, floor);
  target('(context) 1 KiB: Keyhole × the undici dispatch floor', f, 'report', f === null ? null : 'reported',
    `${fmt(k1)} vs ${fmt(floor)} req/s: bench/srv/undici-dispatch.mjs is Node's http server and undici's dispatch API with no security at all (no token, scope, audit, metrics, header allowlist), the most any Node proxy on undici does here. The targets above ask Keyhole, with everything on, for ${fmt(ratio(0.3 * (get('nginx', '1k', 'rps') ?? 0), floor), 2)}× (0.30 × nginx), ${fmt(ratio(1.8 * (get('nginx-authreq', '1k', 'rps') ?? 0), floor), 2)}× (1.8 × auth_request) and ${fmt(ratio(1.3 * (get('undici', '1k', 'rps') ?? 0), floor), 2)}× (1.3 × minimal undici) of that floor; see docs/performance.md for what Keyhole's own steps cost`);
  const peers = NODE_PEERS.filter((c) => c !== 'undici-dispatch' && get(c, '1k', 'rps'));
  if (peers.length) {
    const ahead = peers.every((c) => k1 > get(c, '1k', 'rps') && (get('keyhole', '64k', 'rps') ?? 0) > (get(c, '64k', 'rps') ?? Infinity));
    target('(context) ahead of every Node peer at 1 KiB and 64 KiB', peers.length, 'report', ahead ? true : false,
      peers.map((c) => `${LABEL[c]} ${fmt(get(c, '1k', 'rps'))} / ${fmt(get(c, '64k', 'rps'))}`).join('; ') + ` req/s vs Keyhole ${fmt(k1)} / ${fmt(get('keyhole', '64k', 'rps'))}, with every security check on`);
  }
  const r64 = ratio(get('keyhole', '64k', 'rps'), get('nginx', '64k', 'rps'));
  target('64 KiB req/s ≥ 0.50 × nginx proxy_pass', r64, 0.5, cmp(r64, 0.5), `${fmt(get('keyhole', '64k', 'rps'))} vs ${fmt(get('nginx', '64k', 'rps'))} req/s; ${cpuNote('64k')}; the undici dispatch floor did ${fmt(get('undici-dispatch', '64k', 'rps'))} (${fmt(ratio(get('undici-dispatch', '64k', 'rps'), get('nginx', '64k', 'rps')), 2)} × nginx): every body chunk is a read and a write through Node's streams`);
  const r100 = ratio(get('keyhole', '100m', 'mbs'), get('nginx', '100m', 'mbs'));
  target('100 MiB MB/s ≥ 1.0 × nginx proxy_pass', r100, 1.0, cmp(r100, 1.0), `${fmt(get('keyhole', '100m', 'mbs'))} vs ${fmt(get('nginx', '100m', 'mbs'))} MB/s; ${cpuNote('100m')}; the undici dispatch floor did ${fmt(get('undici-dispatch', '100m', 'mbs'))} MB/s: a Node socket reads at most 64 KiB at a time into a fresh buffer, and the garbage buffers make V8 collect often (docs/performance.md)`);
  const p99 = get('keyhole', '1k', 'p99_ms');
  target('p99 at 1 KiB / 64 connections ≤ 8 ms', p99, 8, p99 === null ? null : p99 <= 8, `median p99 over rounds ${fmt(p99, 2)} ms (p50 ${fmt(get('keyhole', '1k', 'p50_ms'), 2)} ms)`);
  const peak = wholeRunPeak.keyhole?.max ?? null;
  const peerPeaks = NODE_PEERS.filter((c) => wholeRunPeak[c]).map((c) => `${LABEL[c]} ${fmt(wholeRunPeak[c].max)}`).join(', ');
  target('peak RSS ≤ 80 MB through the whole run', peak === null ? null : (peak * 1024 * 1024) / 1e6, 80, peak === null ? null : (peak * 1024 * 1024) / 1e6 <= 80, `VmHWM after 1 KiB + 64 KiB + 1 MiB + 100 MiB loads, max over rounds: ${fmt(peak, 1)} MiB; already ${fmt(wholeRunPeak.keyhole?.idle, 1)} MiB idle just after start, of which ~38 MiB are the node binary's own pages (docs/performance.md has the breakdown); the Node peers peaked at ${peerPeaks || '—'} MiB`);
  target('peak RSS flat in object size (2 GiB download does not raise it)', flat ? (flat.hwm_after_local_kb - flat.hwm_before_kb) / 1024 : null, '≤ 8 MiB rise', flatOk, flatText);
  const presign = of('presign')[0];
  const rows = presign ? presignRows(presign.output) : [];
  if (rows.length) {
    const minCached = Math.min(...rows.map((r) => r.cached ?? 0));
    const minUncached = Math.min(...rows.map((r) => r.uncached ?? 0));
    const met = minUncached >= 50_000 ? true : minCached >= 50_000 ? 'cached only' : false;
    target('presign ≥ 50,000 URLs/s on one core', minCached, 50_000, met,
      `npm run bench:presign on one pinned core: repeated URL (minted-URL cache) ≥ ${fmt(minCached)}/s for every kind; signed every time: ${rows.map((r) => `${r.kind} ${fmt(r.uncached)}`).join(', ')}/s`);
  } else {
    const rate = presign ? presignRate(presign.output) : null;
    target('presign ≥ 50,000 URLs/s on one core', rate, 50_000, rate === null ? null : rate >= 50_000, presign && presign.exit !== null ? `npm run bench:presign (exit ${presign.exit}), pinned to one core${rate === null ? ': no figure recognised in its output (below)' : ''}` : 'not measurable yet: bench/presign.ts is not there');
  }
  // Issue 17: memory at 64 connections and idle, and the floor on this runtime.
  const peak64 = Math.max(...['1k', '64k', '1m'].map((o) => get('keyhole', o, 'rss_peak_mb') ?? 0));
  const idleK = wholeRunPeak.keyhole?.idle ?? null;
  const thr = ['1k', '64k', '1m'].map((o) => `${nameOf[o]} ${fmt(get('keyhole', o, 'rps'))} req/s`).join(', ');
  target('peak RSS ≤ 128 MiB at 64 connections (issue 17)', peak64 || null, 128, peak64 ? peak64 <= 128 : null,
    `max over the 1 KiB, 64 KiB and 1 MiB loads at 64 connections (VmRSS sampled): ${['1k', '64k', '1m'].map((o) => `${nameOf[o]} ${fmt(get('keyhole', o, 'rss_peak_mb'))}`).join(', ')} MiB, with ${thr}; node runs with ${meta.keyhole_node_flags ?? 'the flags of npm start'}. The Node peers at 64 KiB: ${NODE_PEERS.filter((c) => get(c, '64k', 'rss_peak_mb')).map((c) => `${LABEL[c]} ${fmt(get(c, '64k', 'rss_peak_mb'))}`).join(', ') || '—'} MiB; nginx ${fmt(get('nginx', '64k', 'rss_peak_mb'))}, Caddy ${fmt(get('caddy', '64k', 'rss_peak_mb'))}`);
  target('idle RSS ≤ 64 MiB (issue 17)', idleK, 64, idleK === null ? null : idleK <= 64,
    `RSS just after start, median over rounds: ${fmt(idleK, 1)} MiB (about 38 MiB of it are pages of the node binary itself, file-backed); the undici dispatch floor idles at ${fmt(wholeRunPeak['undici-dispatch']?.idle, 1)} MiB`);
  target('(context) the floor on this runtime: Keyhole × the undici dispatch floor', ratio(get('keyhole', '64k', 'rps'), get('undici-dispatch', '64k', 'rps')), 'report', get('undici-dispatch', '64k', 'rps') ? 'reported' : null,
    `${meta.node ?? 'node'}; the floor (no security at all): ${['1k', '64k', '1m'].map((o) => `${nameOf[o]} ${fmt(get('undici-dispatch', o, 'rps'))}`).join(', ')} req/s, 100 MiB ${fmt(get('undici-dispatch', '100m', 'mbs'))} MB/s; Keyhole: ${['1k', '64k', '1m'].map((o) => `${nameOf[o]} ${fmt(ratio(get('keyhole', o, 'rps'), get('undici-dispatch', o, 'rps')), 2)}×`).join(', ')}, 100 MiB ${fmt(ratio(get('keyhole', '100m', 'mbs'), get('undici-dispatch', '100m', 'mbs')), 2)}× of it (the figure shown is 64 KiB)`);
  const w = get('keyhole-w2', '1k', 'rps');
  target('workers: 2 scaling (report honestly)', w ? ratio(w, k1) : null, 'report', w ? 'reported' : null,
    w ? `1 KiB: ${fmt(w)} req/s with 2 workers on cpu0+cpu1 (sharing cpu1 with wrk and the upstream: only 2 cores) vs ${fmt(k1)} req/s with 1 process on cpu0` : meta.workers_supported ? 'config accepts workers: 2 but no run was recorded' : 'not yet measurable: the built Keyhole does not accept `workers: 2`');
}
/** bench/presign.ts prints a markdown table: | kind | uncached per CPU-s (wall) | cached … |. */
function presignRows(text) {
  const rows = [];
  for (const line of (text ?? '').split('\n')) {
    const cells = line.split('|').map((c) => c.trim()).filter((c, i, a) => i > 0 && i < a.length - 1);
    if (cells.length < 3 || !/^[\d,.]+/.test(cells[1])) continue;
    // The leading figure is per CPU-second of the signing thread; the bracketed one is wall-clock.
    const num = (c) => {
      const m = /^([\d,.]+)/.exec(c);
      return m ? Number(m[1].replace(/,/g, '')) : null;
    };
    rows.push({ kind: cells[0], uncached: num(cells[1]), cached: num(cells[2]) });
  }
  return rows;
}
function presignRate(text) {
  if (!text) return null;
  for (const line of text.split('\n').reverse()) {
    try {
      const o = JSON.parse(line);
      for (const k of ['perSecond', 'urlsPerSecond', 'rate', 'ops', 'per_second', 'urls_per_second']) if (typeof o[k] === 'number') return o[k];
    } catch {
      /* not JSON */
    }
  }
  const m = /([\d,.]+)\s*(?:presigned )?(?:URLs?|urls?|ops|signatures?)?\s*\/\s*s/.exec(text);
  return m ? Number(m[1].replace(/,/g, '')) : null;
}
md.push('## Targets (issues 7 and 17)');
md.push('');
md.push('| target | measured | met | why / what limits it |');
md.push('|---|---|---|---|');
for (const t of targets) {
  const x = t.measured;
  const shown = typeof x !== 'number' ? '—'
    : t.target.includes('≤ 80 MB') ? `${fmt(x)} MB`
    : t.target.includes('RSS ≤') ? `${fmt(x)} MiB`
    : t.target.includes('flat') ? `${fmt(x, 1)} MiB rise`
    : t.target.includes('p99') ? `${fmt(x, 2)} ms`
    : t.target.startsWith('presign') ? `${fmt(x)}/s`
    : t.target.includes('every Node peer') ? `${fmt(x)} peers`
    : `${fmt(x, 2)}×`;
  const met = t.met === true ? '**met**' : t.met === false ? '**not met**' : t.met === null || t.met === undefined ? 'not measured' : typeof t.met === 'string' && t.met !== 'reported' ? `**${t.met}**` : t.met;
  md.push(`| ${t.target} | ${shown} | ${met}${load1 > 1 && t.met !== null && t.met !== undefined && !t.target.startsWith('presign') ? ' (noisy run)' : ''} | ${t.reason} |`);
}
md.push('');
md.push('Ratios come from this one run (same machine, same minute); absolute figures move with the machine and with whatever else runs on it.');
md.push('');

// --- authorizer mode: nginx / Caddy pump the bytes, Keyhole decides (/v1/authorize)
const authzTargets = [];
if (AUTHZ.some((c) => contenders.includes(c))) {
  const az = [];
  const tgt = (name, measured, goal, met, reason) => authzTargets.push({ target: name, measured, goal, met, reason });
  for (const c of AUTHZ.filter((x) => contenders.includes(x))) {
    const front = c === 'nginx-authz' ? 'nginx' : 'Caddy';
    const eff = (x) => get(x, '1k', 'per_cpu_s');
    const a = ratio(get(c, '1k', 'rps'), get('nginx-authreq', '1k', 'rps'));
    tgt(`${front} → Keyhole authorizer: 1 KiB req/s ≥ 2 × the jose verifier stack (nginx-authreq)`, a, 2, cmp(a, 2),
      `${fmt(get(c, '1k', 'rps'))} vs ${fmt(get('nginx-authreq', '1k', 'rps'))} req/s; per CPU-second of the whole stack ${fmt(eff(c))} vs ${fmt(eff('nginx-authreq'))} (${fmt(ratio(eff(c), eff('nginx-authreq')), 2)}×); p99 ${fmt(get(c, '1k', 'p99_ms'), 2)} vs ${fmt(get('nginx-authreq', '1k', 'p99_ms'), 2)} ms; Keyhole's own /v1/data did ${fmt(get('keyhole', '1k', 'rps'))}`);
    const m1 = ratio(get(c, '1m', 'rps'), get('nginx', '1m', 'rps'));
    tgt(`${front} → Keyhole authorizer: 1 MiB ≥ 0.95 × nginx proxy_pass`, m1, 0.95, cmp(m1, 0.95),
      `${fmt(get(c, '1m', 'rps'))} vs ${fmt(get('nginx', '1m', 'rps'))} req/s (${fmt(get(c, '1m', 'mbs'))} vs ${fmt(get('nginx', '1m', 'mbs'))} MB/s); stack CPU ${fmt(get(c, '1m', 'cpu_pct'))}% vs nginx ${fmt(get('nginx', '1m', 'cpu_pct'))}% of the core`);
    const m100 = ratio(get(c, '100m', 'mbs'), get('nginx', '100m', 'mbs'));
    tgt(`${front} → Keyhole authorizer: 100 MiB MB/s ≥ 0.95 × nginx proxy_pass`, m100, 0.95, cmp(m100, 0.95),
      `${fmt(get(c, '100m', 'mbs'))} vs ${fmt(get('nginx', '100m', 'mbs'))} MB/s; stack CPU ${fmt(get(c, '100m', 'cpu_pct'))}% vs nginx ${fmt(get('nginx', '100m', 'cpu_pct'))}% of the core`);
  }
  az.push('## Authorizer mode: nginx / Caddy pump the bytes, Keyhole decides');
  az.push('');
  az.push('- `nginx-authz`: deploy/authorizer/nginx.conf, `auth_request` → Keyhole `GET /v1/authorize`, then `proxy_pass` to the upstream Keyhole named (through the storage group) with the `Authorization` Keyhole computed (BasicAuth of the bench\'s `http` provider: the data plane holds no credential, the upstream refuses a request without it). `caddy-authz`: deploy/authorizer/Caddyfile, `forward_auth` → the same. Both files run as shipped, rewritten like test/helpers/data-planes.ts does (bench/lib.sh `render_authz`: addresses, ports, certificate paths).');
  az.push('- Keyhole is its own process (`node <flags of scripts.start> cli.js serve`, config bench/conf/keyhole.yaml.in + `authorizer: { peers: [127.0.0.1] }`, audit and metrics on), pinned with the data plane on the contender\'s core; peak RSS, CPU % and "per CPU-s" count both processes (nginx worker or Caddy, + Keyhole).');
  az.push('- The hop data plane → Keyhole is **https as shipped** (Keyhole\'s TLS listener, certificate verified against the bench CA, nginx `keepalive 16` with TLS session reuse; Caddy\'s transport with its default keep-alive pool). The **client side is plain HTTP**, the one change beyond addresses: the tables here are plain-HTTP tables, and `nginx`, `nginx-authreq` and `keyhole` (`insecurePlainHttp`) are all measured without TLS toward wrk, so TLS on the client side would charge the stacks a cost their references do not pay (the TLS round compares that separately).');
  az.push('- Connections: nginx keeps its connections to the storage in the example\'s upstream group (the bench maps its `upstream` provider to it, `keepalive 64`; the `nginx` and `nginx-authreq` contenders keep 128) and its 64 connections to Keyhole open (`keepalive 16` per worker, TLS reused); Caddy keeps up to 256 idle connections per storage address (the example\'s setting) and asks Keyhole over one HTTP/2 connection (ALPN: Keyhole\'s TLS listener offers h2 by default). Every read costs the data plane a subrequest to Keyhole over TLS, on the same core.');
  az.push(`- Load average at start / end: ${meta.loadavg_start ?? '?'} / ${end.loadavg_end ?? '?'}${load1 > 1 ? ` — **NOISY RUN** (1-minute load ${load1} at the start): ratios from this run are not figures to quote` : ''}.`);
  az.push('');
  const cols = ['nginx', 'nginx-authreq', 'nginx-authz', 'caddy', 'caddy-authz', 'keyhole'].filter((c) => contenders.includes(c));
  az.push(`| object | ${cols.map((c) => LABEL[c]).join(' | ')} |`);
  az.push(`|---|${cols.map(() => '---').join('|')}|`);
  for (const o of ['1k', '64k', '1m', '100m']) {
    if (!cols.some((c) => table[c]?.[o])) continue;
    const cell = (c) => {
      const x = table[c]?.[o];
      if (!x) return '—';
      return o === '100m' ? `${fmt(x.mbs)} MB/s (${fmt(x.cpu_pct)}% CPU)` : `${fmt(x.rps)} req/s, p99 ${fmt(x.p99_ms, 2)} ms (${fmt(x.cpu_pct)}% CPU)`;
    };
    az.push(`| ${nameOf[o]} | ${cols.map(cell).join(' | ')} |`);
  }
  az.push(`| peak RSS MiB (whole life, all processes) | ${cols.map((c) => (wholeRunPeak[c] ? `${fmt(wholeRunPeak[c].max)} (${of('contender_end').find((e) => e.contender === c)?.processes ?? '?'} processes)` : '—')).join(' | ')} |`);
  az.push('');
  az.push('Targets (authorizer mode), from this run:');
  az.push('');
  az.push('| target | measured | met | figures |');
  az.push('|---|---|---|---|');
  for (const t of authzTargets) {
    const met = t.met === true ? '**met**' : t.met === false ? '**not met**' : 'not measured';
    az.push(`| ${t.target} | ${typeof t.measured === 'number' ? `${fmt(t.measured, 2)}×` : '—'} | ${met}${load1 > 1 && typeof t.met === 'boolean' ? ' (noisy run)' : ''} | ${t.reason} |`);
  }
  az.push('');
  md.push(...az);
  process.stdout.write(`${az.join('\n')}\n`);
}

// --- anchors
md.push('## Anchor figures quoted in the issue (measured earlier with the same pinning) vs this run');
md.push('');
md.push('| contender | 1 KiB req/s anchor / here | 64 KiB req/s anchor / here | 100 MiB MB/s anchor / here |');
md.push('|---|---|---|---|');
for (const [c, a] of Object.entries(ANCHORS)) {
  const here = (o, k) => (table[c]?.[o] ? fmt(table[c][o][k]) : '—');
  md.push(`| ${LABEL[c]} | ${fmt(a['1k'])} / ${here('1k', 'rps')} | ${fmt(a['64k'])} / ${here('64k', 'rps')} | ${fmt(a['100m'])} / ${here('100m', 'mbs')} |`);
}
md.push(`| ${LABEL.keyhole} | — / ${fmt(k1)} | — / ${fmt(get('keyhole', '64k', 'rps'))} | — / ${fmt(get('keyhole', '100m', 'mbs'))} |`);
md.push('');
md.push('Anchors: minimal undici ~147 MB peak RSS, nginx proxy_pass ~8 MB, nginx+auth_request ~102 MB, Caddy ~44 MB.');
md.push('');

// --- profile
if (profile) {
  const pr = of('run').find((r) => r.contender === 'keyhole-prof');
  md.push('## Where Keyhole spends its CPU at 1 KiB (`node --cpu-prof`)');
  md.push('');
  md.push(`${fmt(profile.busy_ms)} ms of busy samples${pr ? ` while serving ${fmt(rps(pr))} req/s under the profiler` : ''}. Self time by area:`);
  md.push('');
  md.push('| area | self ms | % of busy |');
  md.push('|---|---|---|');
  for (const a of profile.areas.slice(0, 14)) md.push(`| ${a.area} | ${fmt(a.self_ms)} | ${a.pct_busy} |`);
  md.push('');
  md.push('Top functions by self time:');
  md.push('');
  md.push('| function | where | self ms | % of busy |');
  md.push('|---|---|---|---|');
  for (const f of profile.top.slice(0, 25)) md.push(`| \`${f.fn}\` | ${f.where} | ${fmt(f.self_ms)} | ${f.pct_busy} |`);
  md.push('');
}

const presign = of('presign')[0];
if (presign && presign.exit !== null) {
  md.push('## Presign output (npm run bench:presign)');
  md.push('');
  md.push('```');
  md.push(presign.output.trim().split('\n').slice(-20).join('\n'));
  md.push('```');
  md.push('');
}
md.push('See docs/performance.md for how to run the harness, how to read these figures, and what the profile says limits Keyhole.');
md.push('');

// The "## Browser grid" section (npm run bench:grid, bench/grid/summarize.mjs) is another
// harness's: carried over as it is when this file is rewritten.
let gridSection = '';
try {
  const old = readFileSync(mdFile, 'utf8');
  const at = old.search(/^## Browser grid\s*$/m);
  if (at >= 0) {
    const next = old.slice(at + 1).search(/^## /m);
    gridSection = '\n' + (next >= 0 ? old.slice(at, at + 1 + next) : old.slice(at)).replace(/\n*$/, '\n');
  }
} catch {
  /* no RESULTS.md yet */
}
writeFileSync(mdFile, md.join('\n') + gridSection);
writeFileSync(jsonFile, JSON.stringify({ meta, end, anchors: ANCHORS, medians: table, beforeAfter, limitsCost, authzTargets, wholeRunPeakMiB: wholeRunPeak, targets, flat: flat ?? null, checks, audits, profile: profile ?? null, presign: of('presign')[0] ?? null, raw: runs }, null, 2) + '\n');
