// Drives real Chromium through the grid benchmark's rounds: for every round, every contender
// (order rotated each round), a new browser on a fresh temporary profile (no cache, no
// session, no TLS resumption) loads the contender's grid page and reads back the page's own
// timing (window.__grid, see make-data.mjs). Chromium is started through CHROMIUM (a wrapper
// that runs it inside the delayed network namespace, pinned); playwright-core drives it over
// its pipe from outside. One JSON line per round goes to RAW, errors included.
//
// Env: CONTENDERS_FILE (JSON [{name, url, expect}]), RAW, ROUNDS, WARMUP (rounds not counted,
// run first), CHROMIUM, SPKI (base64 SHA-256 of the server key's SPKI), TIMEOUT_MS, IMAGES.
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

interface Contender {
  name: string;
  url: string;
  expect: 'h2' | 'http/1.1';
}
interface Grid {
  images: number;
  lastDecoded: number;
  failedCount: number;
  failed: string[];
  wrongSize: number;
  nav: { protocol: string; status: number; responseStart: number; responseEnd: number; domContentLoaded: number; newConnection: boolean };
  resources: number;
  protocols: Record<string, number>;
  statuses: Record<string, number>;
  bodySizes: Record<string, number>;
  newConnections: number;
  firstImageStart: number | null;
  medianResponseEnd: number | null;
  lastResponseEnd: number | null;
}

const env = (k: string, d?: string): string => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const contenders = JSON.parse(readFileSync(env('CONTENDERS_FILE'), 'utf8')) as Contender[];
const RAW = env('RAW');
const ROUNDS = Number(env('ROUNDS', '7'));
const WARMUP = Number(env('WARMUP', '1'));
const CHROMIUM = env('CHROMIUM');
const SPKI = env('SPKI');
const TIMEOUT_MS = Number(env('TIMEOUT_MS', '60000'));
const IMAGES = Number(env('IMAGES', '200'));
const SIZE = Number(env('SIZE', '65536'));

const args = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic', // TCP only: h2 or http/1.1, as the contender claims
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-extensions',
  `--ignore-certificate-errors-spki-list=${SPKI}`, // trusts the run's server key, nothing else
];

const write = (line: object): void => appendFileSync(RAW, JSON.stringify(line) + '\n');
const log = (s: string): void => void process.stderr.write(`[grid ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

/** What is wrong with a page's result for this contender, if anything (the round then fails). */
function problems(c: Contender, g: Grid): string[] {
  const p: string[] = [];
  if (g.images !== IMAGES) p.push(`${g.images} images on the page, expected ${IMAGES}`);
  if (g.failedCount) p.push(`${g.failedCount} images failed to load/decode: ${g.failed.join('; ')}`);
  if (g.wrongSize) p.push(`${g.wrongSize} images decoded at the wrong size`);
  if (g.resources !== IMAGES) p.push(`${g.resources} image Resource Timing entries, expected ${IMAGES}`);
  const protos = Object.keys(g.protocols);
  if (g.nav.protocol !== c.expect || protos.some((k) => k !== c.expect))
    p.push(`protocol: expected ${c.expect}, negotiated page ${g.nav.protocol || '(empty)'}, images ${protos.map((k) => `${k || '(empty)'}×${g.protocols[k]}`).join(', ')}`);
  if (g.nav.status !== 200) p.push(`page status ${g.nav.status}`);
  const statuses = Object.keys(g.statuses);
  if (statuses.some((s) => s !== '200')) p.push(`image statuses ${JSON.stringify(g.statuses)}`);
  const sizes = Object.keys(g.bodySizes);
  if (sizes.some((s) => s !== String(SIZE))) p.push(`image body sizes ${JSON.stringify(g.bodySizes)}`);
  return p;
}

async function runOne(c: Contender, round: number, position: number): Promise<void> {
  const profile = mkdtempSync(join(tmpdir(), 'keyhole-grid-profile-'));
  const started = Date.now();
  let ctx: BrowserContext | undefined;
  const consoleErrors: string[] = [];
  const line: Record<string, unknown> = { type: 'round', round, warmup: round <= 0, position, contender: c.name, expect: c.expect, at: new Date().toISOString() };
  try {
    ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args, viewport: { width: 1280, height: 900 }, timeout: 30_000 });
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error' && consoleErrors.length < 5) consoleErrors.push(m.text().replace(/token=[^&\s]*/g, 'token=…').slice(0, 200));
    });
    await page.goto(c.url, { waitUntil: 'commit', timeout: TIMEOUT_MS });
    const g = (await (await page.waitForFunction(() => (window as unknown as { __grid?: unknown }).__grid, undefined, { timeout: TIMEOUT_MS, polling: 50 })).jsonValue()) as Grid;
    const p = problems(c, g);
    Object.assign(line, {
      ok: p.length === 0,
      error: p.length ? p.join(' | ') : undefined,
      ms: g.lastDecoded,
      lastResponseEnd: g.lastResponseEnd,
      medianResponseEnd: g.medianResponseEnd,
      firstImageStart: g.firstImageStart,
      pageResponseEnd: g.nav.responseEnd,
      pageProtocol: g.nav.protocol,
      protocols: g.protocols,
      newConnections: g.newConnections,
      statuses: g.statuses,
    });
  } catch (e) {
    Object.assign(line, { ok: false, error: (String((e as Error)?.message ?? e).split('\n')[0] ?? '').replace(/token=[^&\s]*/g, 'token=…').slice(0, 300) });
  } finally {
    await ctx?.close().catch(() => undefined);
    rmSync(profile, { recursive: true, force: true });
  }
  if (consoleErrors.length) line.console = consoleErrors;
  line.wallMs = Date.now() - started;
  write(line);
  log(`round ${round}${round <= 0 ? ' (warm-up)' : ''} ${c.name}: ${line.ok ? `${(line.ms as number).toFixed(0)} ms, ${Object.entries(line.protocols as object).map(([k, v]) => `${k}×${v}`).join(' ')}, ${line.newConnections} connections` : `FAILED ${line.error}${line.ms !== undefined ? ` (${(line.ms as number).toFixed(0)} ms)` : ''}`}`);
}

for (let r = 1 - WARMUP; r <= ROUNDS; r++) {
  const k = ((r % contenders.length) + contenders.length) % contenders.length;
  const order = [...contenders.slice(k), ...contenders.slice(0, k)]; // rotated: every contender takes every position
  for (const [i, c] of order.entries()) await runOne(c, r, i);
}
