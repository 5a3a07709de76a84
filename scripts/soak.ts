// npm run soak: SOAK_SECONDS (600) of mixed load against a real Keyhole process — valid
// and invalid tokens, full and ranged reads on the http and local providers, aborted
// downloads, hostile URIs — sampling the process's RSS, heap after GC, handles, file
// descriptors and event-loop delay. Prints the samples and writes them to
// docs/hostile-results.md (between the soak markers). Loopback only; stops by itself.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { testCerts } from '../test/helpers/certs.ts';
import { baseYaml, dataUrl } from '../test/helpers/keyhole.ts';
import { startUpstream } from '../test/helpers/upstream.ts';
import { startKeyholeChild } from '../test/fault/support/child.ts';
import type { ChildStats } from '../test/fault/support/keyhole-child.ts';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 600);
const SAMPLE = Number(process.env.SOAK_SAMPLE_SECONDS ?? Math.max(5, Math.round(SECONDS / 20)));
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY ?? 16);
const RESULTS = join(process.cwd(), 'docs', 'hostile-results.md');

const big = Buffer.alloc(512 * 1024, 0x64);
const dir = mkdtempSync(join(tmpdir(), 'keyhole-soak-'));
writeFileSync(join(dir, 'big.bin'), big);
writeFileSync(join(dir, 'small.txt'), 'small');
const up = await startUpstream({ objects: { '/big.bin': { body: big }, '/small.txt': { body: 'small', type: 'text/plain' } } });
const k = await startKeyholeChild(
  baseYaml(`providers:
  - name: up
    kind: http
    match: https://up.test/
    baseUrl: ${up.origin}/
    allowPrivateNetworks: true
    connections: 16
  - name: files
    kind: local
    match: local://files/
    root: ${dir}
`).replace('log: { level: debug }', 'log: { level: silent, audit: false }'),
);
const good = await k.token({ scope: ['https://up.test/', 'local://files/'] });
const narrow = await k.token({ scope: ['local://files/small.txt'] });
const expired = await k.token({ scope: ['local://files/'], ttlSeconds: -3600 });
const base = `https://localhost:${k.port}`;
const agent = new Agent({ connect: { ca: readFileSync(testCerts().caCert) }, connections: CONCURRENCY * 2 });

const counts: Record<string, number> = {};
const count = (what: string) => (counts[what] = (counts[what] ?? 0) + 1);

async function get(path: string, headers: Record<string, string>, abortAfterFirstChunk = false): Promise<number> {
  const ac = new AbortController();
  const res = await request(base + path, { dispatcher: agent, headers, signal: ac.signal });
  try {
    for await (const _chunk of res.body) {
      if (abortAfterFirstChunk) {
        ac.abort();
        break;
      }
    }
  } catch {
    /* the abort we asked for */
  }
  return res.statusCode;
}

const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
const objects = ['https://up.test/big.bin', 'local://files/big.bin', 'https://up.test/small.txt', 'local://files/small.txt'];
const hostile = ['local://files/../etc/passwd', 'local://files/%2e%2e/x', 'https://up.test/a%00b', 'https://elsewhere/x', 'local://files//x', 'local://files/%252e%252e/x'];

async function once(): Promise<void> {
  const r = Math.random();
  const auth = { authorization: `Bearer ${good}` };
  try {
    if (r < 0.3) count(`full ${await get(dataUrl(pick(objects)), auth)}`);
    else if (r < 0.5) count(`range ${await get(dataUrl(pick(objects)), { ...auth, range: pick(['bytes=0-99', 'bytes=100-', 'bytes=-500', 'bytes=999999999-', 'bytes=5-1']) })}`);
    // `narrow` is valid but scoped to local://files/small.txt only: out of scope here.
    else if (r < 0.65) count(`bad token ${await get(dataUrl(pick(objects.slice(0, 3))), { authorization: `Bearer ${pick([expired, 'garbage', `${good}x`, narrow])}` })}`);
    else if (r < 0.7) count(`query token ${await get(dataUrl('local://files/small.txt', good), {})}`);
    else if (r < 0.9) count(`aborted ${await get(dataUrl(pick(objects.slice(0, 2))), auth, true)}`);
    else count(`hostile uri ${await get(dataUrl(pick(hostile)), auth)}`);
  } catch {
    count('client error');
  }
}

const samples: { t: number; s: ChildStats; requests: number }[] = [];
const started = Date.now();
const deadline = started + SECONDS * 1000;
let requests = 0;
const workers = Array.from({ length: CONCURRENCY }, async () => {
  while (Date.now() < deadline) {
    await once();
    requests++;
  }
});
const mb = (n: number) => (n / 1e6).toFixed(1);
const sampler = (async () => {
  samples.push({ t: 0, s: await k.stats(), requests: 0 });
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, Math.min(SAMPLE * 1000, Math.max(0, deadline - Date.now()))));
    const s = await k.stats();
    const t = Math.round((Date.now() - started) / 1000);
    samples.push({ t, s, requests });
    process.stderr.write(`t=${t}s requests=${requests} rss=${mb(s.rss)}MB heap=${mb(s.heapUsed)}MB handles=${s.handles} fds=${s.fds} eld p99=${s.eldP99Ms.toFixed(1)}ms max=${s.eldMaxMs.toFixed(1)}ms\n`);
  }
})();
await Promise.all([...workers, sampler]);
await new Promise((r) => setTimeout(r, 1000));
const final = await k.stats();
samples.push({ t: Math.round((Date.now() - started) / 1000), s: final, requests });
await agent.close();
await k.close();
await up.close();
rmSync(dir, { recursive: true, force: true });

// Flatness: compare the last third of the samples with the first third (after warm-up).
const third = Math.max(1, Math.floor((samples.length - 1) / 3));
const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const early = samples.slice(1, 1 + third);
const late = samples.slice(-third);
const drift = (f: (s: ChildStats) => number) => avg(late.map((x) => f(x.s))) - avg(early.map((x) => f(x.s)));
const heapDrift = drift((s) => s.heapUsed);
const rssDrift = drift((s) => s.rss);
const fdDrift = drift((s) => s.fds);
const hostileTried = Object.entries(counts).filter(([what]) => /^(bad token|hostile uri)/.test(what)).reduce((a, [, n]) => a + n, 0);
const hostileThrough = Object.entries(counts).filter(([what]) => /^(bad token|hostile uri) 2/.test(what)).reduce((a, [, n]) => a + n, 0);
const flat = heapDrift < 8e6 && fdDrift <= 4 && hostileThrough === 0;

const table = samples
  .map((x) => `| ${x.t} | ${x.requests} | ${mb(x.s.rss)} | ${mb(x.s.heapUsed)} | ${x.s.handles} | ${x.s.fds} | ${x.s.eldP99Ms.toFixed(1)} | ${x.s.eldMaxMs.toFixed(1)} |`)
  .join('\n');
const outcomes = Object.entries(counts)
  .sort()
  .map(([k2, v]) => `${k2}: ${v}`)
  .join(', ');
const section = `<!-- soak:start -->
## Soak (last run: ${new Date().toISOString()})

\`SOAK_SECONDS=${SECONDS} npm run soak\`, ${CONCURRENCY} concurrent clients, Node ${process.version}, on this 2-core machine
(shared with other work while it ran). ${requests} requests in ${SECONDS} s. Outcomes (kind and status): ${outcomes}.

| t (s) | requests | RSS (MB) | heap after GC (MB) | active handles | fds | loop delay p99 (ms) | loop delay max (ms) |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${table}

Hostile requests (bad tokens, hostile URIs): ${hostileTried} tried, ${hostileThrough} got through.
Drift, last third against first third of the run: heap ${mb(heapDrift)} MB, RSS ${mb(rssDrift)} MB, fds ${fdDrift.toFixed(1)}.
Verdict: **${flat ? 'flat' : 'NOT flat — investigate'}** (flat means heap drift < 8 MB, fd drift ≤ 4, and no hostile request got through).
The loop-delay figures include the forced GC each sample triggers, and this machine's load.
<!-- soak:end -->`;
process.stdout.write(`${section}\n`);
const doc = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : '# Hostile-world results\n\n';
writeFileSync(RESULTS, /<!-- soak:start -->[\s\S]*<!-- soak:end -->/.test(doc) ? doc.replace(/<!-- soak:start -->[\s\S]*<!-- soak:end -->/, section) : `${doc.trimEnd()}\n\n${section}\n`);
process.exit(flat ? 0 : 1);
