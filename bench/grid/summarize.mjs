// The grid benchmark's raw lines (bench/.work/grid/raw.jsonl) → a table on stdout, the
// "## Browser grid" section of bench/RESULTS.md (replaced in place, or appended), and
// bench/grid/results.json (meta, medians, targets, every round, failed ones included).
// Usage: node summarize.mjs RAW.jsonl RESULTS.md results.json
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const [rawFile, mdFile, jsonFile] = process.argv.slice(2);
const lines = readFileSync(rawFile, 'utf8')
  .split('\n')
  .filter(Boolean)
  .flatMap((l) => {
    try {
      return [JSON.parse(l)];
    } catch {
      process.stderr.write(`summarize: skipping an unreadable line: ${l.slice(0, 120)}\n`);
      return [];
    }
  });
const meta = lines.find((l) => l.type === 'meta') ?? {};
const end = lines.find((l) => l.type === 'end') ?? {};
const rounds = lines.filter((l) => l.type === 'round');
const counted = rounds.filter((r) => !r.warmup);

const LABEL = {
  'nginx-h1': 'nginx, HTTP/1.1, no checks',
  'nginx-h2': 'nginx, HTTP/2, no checks (the limit)',
  'keyhole-h1-local': 'Keyhole `server.http2: false`, local provider',
  'keyhole-h2-local': 'Keyhole `server.http2: true`, local provider',
  'keyhole-h1-http': 'Keyhole `server.http2: false`, http provider → nginx',
  'keyhole-h2-http': 'Keyhole `server.http2: true`, http provider → nginx',
};
const contenders = meta.contenders ?? [...new Set(rounds.map((r) => r.contender))];

const median = (v) => {
  if (!v.length) return null;
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ms = (x) => (x === null || x === undefined ? '—' : Math.round(x).toLocaleString('en-US'));
const ratio = (a, b) => (a === null || b === null || !b ? null : a / b);
const fx = (x) => (x === null ? '—' : `${x.toFixed(2)}×`);
const protoText = (p) =>
  Object.entries(p ?? {})
    .map(([k, v]) => `${k || '(empty)'}×${v}`)
    .join(', ');

/** Per contender: medians over the rounds that passed every check; failed rounds counted and kept. */
const table = {};
for (const c of contenders) {
  const all = counted.filter((r) => r.contender === c);
  const ok = all.filter((r) => r.ok);
  const failed = all.filter((r) => !r.ok);
  const v = ok.map((r) => r.ms);
  // Rounds that loaded every image but on the wrong protocol: their time, shown apart, never as the claim.
  const wrongProto = failed.filter((r) => typeof r.ms === 'number' && /^protocol:/.test(r.error ?? '') && !/\|/.test(r.error ?? ''));
  const seen = {};
  for (const r of all) for (const [k, n] of Object.entries(r.protocols ?? {})) seen[k || '(empty)'] = (seen[k || '(empty)'] ?? 0) + n;
  table[c] = {
    rounds: all.length,
    ok: ok.length,
    failed: failed.length,
    expect: all[0]?.expect ?? (c.includes('-h2') ? 'h2' : 'http/1.1'),
    protocolsSeen: Object.keys(seen),
    median: median(v),
    min: v.length ? Math.min(...v) : null,
    max: v.length ? Math.max(...v) : null,
    lastResponseEnd: median(ok.map((r) => r.lastResponseEnd)),
    pageResponseEnd: median(ok.map((r) => r.pageResponseEnd)),
    connections: median(ok.map((r) => r.newConnections)),
    wrongProtocolMedian: wrongProto.length ? median(wrongProto.map((r) => r.ms)) : null,
    wrongProtocolRounds: wrongProto.length,
    wrongProtocolSeen: wrongProto.length ? protoText(wrongProto[0].protocols) : null,
  };
}
const med = (c) => table[c]?.median ?? null;
const h1Of = (c) => c.replace('-h2-', '-h1-');

// The issue's targets: Keyhole over HTTP/2 ≤ 1.2 × nginx HTTP/2, and ≤ 0.5 × Keyhole over HTTP/1.1.
const targets = [];
for (const c of contenders.filter((x) => x.startsWith('keyhole-h2-'))) {
  const t = table[c];
  const why = t.ok === 0 ? (t.wrongProtocolRounds ? `not measurable: the browser negotiated ${t.wrongProtocolSeen} (Keyhole offered no h2)` : 'not measurable: every round failed') : null;
  if (contenders.includes('nginx-h2')) {
    const r = ratio(med(c), med('nginx-h2'));
    targets.push({ target: `${c} ≤ 1.2 × nginx-h2`, limit: 1.2, ratio: r, met: r === null ? null : r <= 1.2, why: why ?? (r === null ? 'nginx-h2 has no passing round' : null) });
  }
  if (contenders.includes(h1Of(c))) {
    const r = ratio(med(c), med(h1Of(c)));
    targets.push({ target: `${c} ≤ 0.5 × ${h1Of(c)}`, limit: 0.5, ratio: r, met: r === null ? null : r <= 0.5, why: why ?? (r === null ? `${h1Of(c)} has no passing round` : null) });
  }
}

const failures = counted.filter((r) => !r.ok);
const warm = rounds.filter((r) => r.warmup);
const noisy = Number(String(meta.loadavg_start ?? '0').split(' ')[0]) > 1;

const md = [];
md.push('## Browser grid');
md.push('');
md.push('Written by `npm run bench:grid` (bench/grid/run.sh → bench/grid/summarize.mjs); every round, failed ones included, is in `bench/grid/results.json`. What the user waits for: real Chromium loads a labeling page holding a grid of ' + `${meta.images ?? '?'} distinct ${((meta.size ?? 0) / 1024).toFixed(0)} KiB PNG images over TLS, from a network namespace ${meta.delay_ms ? `${2 * meta.delay_ms} ms` : '?'} (round trip) away; the page times itself from navigation start to the last image decoded (\`performance.now()\` once every \`img.decode()\` settled).`);
md.push('');
md.push(`- Run: ${meta.started ?? '?'} → ${end.ended ?? '(did not finish)'}; ${meta.rounds ?? '?'} counted round(s) + ${meta.warmup ?? 0} warm-up round (not counted), contenders interleaved (order rotated every round), a new Chromium on a fresh profile (no cache, no TLS session) for every page load.`);
md.push(`- Machine: ${meta.cpus ?? '?'} × ${meta.cpu_model ?? '?'}, Linux ${meta.kernel ?? '?'}; ${meta.chromium ?? 'Chromium ?'} (headless, playwright-core over its pipe); Node ${meta.node ?? '?'}; ${meta.nginx ?? 'nginx ?'}.`);
md.push(`- Load average at start / end: ${meta.loadavg_start ?? '?'} / ${end.loadavg_end ?? '?'}${noisy ? ' — **NOISY**: other work was running when the run started; rerun on a quiet machine before trusting small differences' : ''}.`);
md.push(`- Network: ${meta.delay_mode === 'netem' ? '' : '**not netem** — '}${meta.delay_note ?? '?'}. TCP connect from the namespace, measured before the rounds: ${meta.rtt_connect_ms ?? '?'} ms (median of 5).`);
md.push(`- Keyhole: ${meta.keyhole ?? '?'}, run from source as \`node ${meta.keyhole_node_flags ?? ''} src/cli.ts serve\`; ${meta.http2_key ? '`server.http2` known to this build: the two Keyholes differ only in it' : '**`server.http2` unknown to this build**: both Keyholes ran without it (HTTP/1.1 only)'}. Config: TLS, HS256 token in each image URL (verified, cached), scope checked, revocation (memory), an audit line per request, metrics; the page comes through Keyhole’s app front (same origin as the images), the images through the data route.`);
md.push(`- Pinning: nginx and Keyhole on cpu${meta.proxy_cpu ?? '?'} (\`taskset\`); the page/upstream nginx on cpu${meta.load_cpu ?? '?'}; Chromium, the curl probe and the delay on ${meta.browser_cpus === 'all' ? 'any core (unpinned)' : `cpu${meta.browser_cpus}`}${meta.delay_rt ? `; the delay at real-time priority (\`${meta.delay_rt}\`, as netem runs in the kernel ahead of every process)` : ''}.`);
md.push(`- The network alone: curl fetching the same ${meta.images ?? '?'} images from nginx over one HTTP/2 connection from the namespace took ${meta.curl_h2_ms ?? '?'} ms (median of 3: ${String(meta.curl_h2_samples ?? '').trim()} ms) — no browser, no decoding.`);
md.push('- Every round checks what the browser negotiated (Resource Timing `nextHopProtocol` of the page and of every image), the status (200) and body size of every image, and that every image decoded at its size; a round failing any of these is listed below and left out of the medians, never shown as the contender it claimed to be.');
md.push('');
md.push('| contender | negotiated | last image decoded, ms: median (min–max) | last image response end, ms | page response end, ms | connects timed¹ | × nginx h2 | × Keyhole h1 (same provider) | rounds ok / run |');
md.push('|---|---|---|---|---|---|---|---|---|');
for (const c of contenders) {
  const t = table[c];
  const h1 = c.startsWith('keyhole-h2-') && contenders.includes(h1Of(c)) ? fx(ratio(t.median, med(h1Of(c)))) : '—';
  const time = t.ok ? `**${ms(t.median)}** (${ms(t.min)}–${ms(t.max)})` : t.wrongProtocolMedian !== null ? `— (${t.wrongProtocolSeen} negotiated, not ${t.expect}: ${ms(t.wrongProtocolMedian)} ms, not counted)` : '— (every round failed)';
  md.push(`| ${LABEL[c] ?? c} | ${t.protocolsSeen.join(', ') || '—'} (expected ${t.expect}) | ${time} | ${ms(t.lastResponseEnd)} | ${ms(t.pageResponseEnd)} | ${t.connections ?? '—'} | ${c === 'nginx-h2' ? '1.00×' : fx(ratio(t.median, med('nginx-h2')))} | ${h1} | ${t.ok} / ${t.rounds} |`);
}
md.push('');
md.push('¹ Median count of Resource Timing entries (page and images) whose connectEnd > connectStart: the TCP+TLS connects the page waited for. A socket Chromium opened before navigation start (preconnect) shows as none, so this is a floor: HTTP/1.1 uses up to 6 per origin, HTTP/2 one.');
md.push('');
md.push('Targets (issue 17 §1):');
md.push('');
md.push('| target | ratio of medians | met |');
md.push('|---|---|---|');
for (const t of targets) md.push(`| ${t.target} | ${fx(t.ratio)} | ${t.met === null ? `— (${t.why})` : t.met ? 'yes' : 'no'} |`);
md.push('');
if (failures.length) {
  md.push(`Failed rounds (${failures.length} of ${counted.length}; warm-up rounds not listed):`);
  md.push('');
  md.push('| round | contender | what failed |');
  md.push('|---|---|---|');
  for (const r of failures) md.push(`| ${r.round} | ${r.contender} | ${(r.error ?? '?').replace(/\|/g, '/')}${typeof r.ms === 'number' ? ` (${ms(r.ms)} ms)` : ''} |`);
  md.push('');
} else {
  md.push(`No round failed (${counted.length} counted${warm.length ? `, ${warm.length} warm-up, ${warm.filter((r) => !r.ok).length} of them failed` : ''}).`);
  md.push('');
}
const checks = meta.checks ?? [];
if (checks.length) {
  md.push('Before the rounds (from the root namespace, no delay): ' + checks.map((k) => `${k.contender}: bytes ${k.bytes_ok ? 'exact' : '**differ**'}, \`curl --http2\` got HTTP/${k.curl_http_version}${k.no_token !== null ? `, no token → ${k.no_token}` : ''}`).join('; ') + '.');
  md.push('');
}
if (end.keyhole_counts?.length) {
  md.push('Keyhole ran its checks on every request: ' + end.keyhole_counts.map((k) => `${k.keyhole} wrote ${k.audit_lines} audit lines, /metrics counted ${k.metrics_requests} requests`).join('; ') + '.');
  md.push('');
}
if (end.delay_stats?.length) {
  const pct = (d, n) => (d.packets ? ((100 * n) / d.packets).toFixed(2) : '?');
  md.push('Delay (NFQUEUE): ' + end.delay_stats.map((d) => `queue ${d.queue}: ${d.packets.toLocaleString('en-US')} packets held ${d.delay_ms} ms; released on time to within 1 ms: ${pct(d, d.late_lt1ms ?? 0)} %, within 2 ms: ${pct(d, (d.late_lt1ms ?? 0) + (d.late_1to2ms ?? 0))} %, ≥ 5 ms late: ${d.late_ge5ms ?? '?'} packets (worst ${d.late_ms_max} ms)`).join('; ') + '.');
  md.push('');
}
md.push('See docs/performance.md ("Browser grid") for how the harness works and how to read it.');
md.push('');
const section = md.join('\n');

// RESULTS.md: replace an existing "## Browser grid" section (up to the next "## " heading), or append.
let doc = existsSync(mdFile) ? readFileSync(mdFile, 'utf8') : '# Keyhole benchmark results\n\n';
const start = doc.search(/^## Browser grid\s*$/m);
if (start >= 0) {
  const rest = doc.slice(start + 1);
  const next = rest.search(/^## /m);
  doc = doc.slice(0, start) + section + (next >= 0 ? '\n' + rest.slice(next) : '');
} else {
  doc = doc.replace(/\n*$/, '\n\n') + section;
}
writeFileSync(mdFile, doc);
writeFileSync(jsonFile, JSON.stringify({ meta, end, medians: table, targets, rounds }, null, 2) + '\n');

// stdout: the same table, plain.
const out = [];
out.push(`Browser grid: ${meta.images} × ${meta.size} B PNG, RTT ${2 * (meta.delay_ms ?? 0)} ms (${meta.delay_mode}; connect ${meta.rtt_connect_ms} ms), ${meta.rounds} rounds + ${meta.warmup} warm-up, ${meta.chromium}, Node ${meta.node}, load ${meta.loadavg_start} → ${end.loadavg_end}`);
const pad = (s, n) => String(s).padEnd(n);
out.push(`${pad('contender', 18)} ${pad('negotiated', 16)} ${pad('median ms', 10)} ${pad('min–max', 14)} ${pad('conns', 6)} ${pad('×nginx-h2', 10)} ${pad('×kh-h1', 8)} ok/run`);
for (const c of contenders) {
  const t = table[c];
  const h1 = c.startsWith('keyhole-h2-') && contenders.includes(h1Of(c)) ? fx(ratio(t.median, med(h1Of(c)))) : '—';
  const m = t.ok ? ms(t.median) : t.wrongProtocolMedian !== null ? `(${ms(t.wrongProtocolMedian)} as ${t.wrongProtocolSeen.split('×')[0]})` : '—';
  out.push(`${pad(c, 18)} ${pad(t.protocolsSeen.join(',') || '—', 16)} ${pad(m, 10)} ${pad(t.ok ? `${ms(t.min)}–${ms(t.max)}` : '—', 14)} ${pad(t.connections ?? '—', 6)} ${pad(c === 'nginx-h2' ? '1.00×' : fx(ratio(t.median, med('nginx-h2'))), 10)} ${pad(h1, 8)} ${t.ok}/${t.rounds}`);
}
for (const t of targets) out.push(`target ${t.target}: ${fx(t.ratio)} → ${t.met === null ? `— (${t.why})` : t.met ? 'met' : 'NOT met'}`);
if (failures.length) out.push(`${failures.length} failed round(s): see the table in ${mdFile}`);
out.push(`wrote ${mdFile} (## Browser grid) and ${jsonFile}`);
process.stdout.write(out.join('\n') + '\n');
