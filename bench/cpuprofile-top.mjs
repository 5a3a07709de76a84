// Reads a V8 .cpuprofile (node --cpu-prof) and prints one JSON line: total sampled time,
// the functions with the most self time, and self time grouped by where the code lives
// (Keyhole's own modules, each npm package, Node internals, GC, idle).
// Usage: node cpuprofile-top.mjs FILE.cpuprofile [KEYHOLE_BUILD_DIR] [TOP=30]
import { readFileSync } from 'node:fs';

const [file, buildDir = '', topArg = '30'] = process.argv.slice(2);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map(); // node id → µs
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}

function area(url, name) {
  if (!url) return name.startsWith('(') ? name : '(native/v8)';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + 14).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.startsWith('node:internal/')) return 'node:internal/' + url.slice(14).split('/').slice(0, 2).join('/').replace(/\.js$/, '');
  if (url.startsWith('node:')) return url;
  if (buildDir && url.includes(buildDir)) return 'keyhole:' + url.slice(url.indexOf(buildDir) + buildDir.length + 1);
  return url.replace(/^file:\/\//, '');
}

const fns = new Map();
const areas = new Map();
let total = 0;
for (const [id, us] of self) {
  const { callFrame: f } = byId.get(id);
  const name = f.functionName || '(anonymous)';
  const where = area(f.url, name);
  const key = `${name} ${where}:${f.lineNumber + 1}`;
  const e = fns.get(key) ?? { fn: name, where: `${where}:${f.lineNumber + 1}`, self_ms: 0 };
  e.self_ms += us / 1000;
  fns.set(key, e);
  const top = where.startsWith('keyhole:') ? 'keyhole' : where;
  areas.set(top, (areas.get(top) ?? 0) + us / 1000);
  total += us / 1000;
}
const busy = total - (areas.get('(idle)') ?? 0);
const pct = (ms) => Math.round((ms / busy) * 1000) / 10;
const top = [...fns.values()].filter((e) => e.fn !== '(idle)').sort((a, b) => b.self_ms - a.self_ms).slice(0, Number(topArg));
const out = {
  type: 'profile',
  file,
  total_ms: Math.round(total),
  busy_ms: Math.round(busy),
  top: top.map((e) => ({ ...e, self_ms: Math.round(e.self_ms), pct_busy: pct(e.self_ms) })),
  areas: [...areas.entries()].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, 20).map(([k, ms]) => ({ area: k, self_ms: Math.round(ms), pct_busy: pct(ms) })),
};
process.stdout.write(JSON.stringify(out) + '\n');
