// Presigned URLs minted per second on one core (one Node thread), per kind and key type:
// uncached (minted-URL cache off, a different object each time) and cached (the same
// object asked again within a stable window). Usage: npm run bench:presign [-- SECONDS]
// Rates are per CPU-second of this process (user + system, GC threads included), which
// stays meaningful on a shared machine; the wall-clock rate is printed beside it.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { Secret } from '../src/config/secret.ts';
import { createProvider, providerSchema } from '../src/providers/kinds.ts';
import type { Provider } from '../src/providers/types.ts';
import { parseDataUri } from '../src/uri.ts';

const seconds = Number(process.argv[2] ?? 2);
const saFile = new URL('../../shared/vectors/gcs/test_service_account.not-a-test.json', import.meta.url);
const sa = new Secret(readFileSync(saFile, 'utf8'), 'file:test_service_account.json');
const azureKey = new Secret('Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==', 'env:AZ');

const kinds: [string, string, Record<string, unknown>][] = [
  ['s3 (SigV4, smithy)', 's3://bench/', { kind: 's3', credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: new Secret('wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', 'env:S') }, buckets: [{ name: 'bench' }] }],
  ['gcs (GOOG4-RSA-SHA256, 2048-bit)', 'gs://bench/', { kind: 'gcs', credentials: { serviceAccountKey: sa }, buckets: [{ name: 'bench' }] }],
  ['gcs (GOOG4-HMAC-SHA256)', 'gs://bench/', { kind: 'gcs', credentials: { hmacAccessId: 'GOOG1EXAMPLE', hmacSecret: new Secret('hmac-secret-0123456789', 'env:H') }, buckets: [{ name: 'bench' }] }],
  ['azure (service SAS)', 'azure-blob://bench/', { kind: 'azure', account: 'devstoreaccount1', accountKey: azureKey, containers: [{ name: 'bench' }] }],
];

function build(match: string, spec: Record<string, unknown>, cacheEntries: number): Provider {
  return createProvider(providerSchema.parse({ name: 'bench', match, cache: { maxEntries: cacheEntries }, ...spec }));
}

async function rate(p: Provider, match: string, distinct: boolean): Promise<{ cpu: number; wall: number }> {
  const uris = Array.from({ length: 4096 }, (_, i) => parseDataUri(`${match}images/${distinct ? i : 0}/frame-${distinct ? i : 0}.jpg`));
  const now = new Date();
  for (let i = 0; i < 200; i++) await p.presign!(uris[i % uris.length]!, [], { now }); // warm-up
  let n = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const until = start + seconds * 1000;
  while (performance.now() < until) {
    for (let j = 0; j < 256; j++) await p.presign!(uris[n++ % uris.length]!, [], { now });
  }
  const wall = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu0);
  return { cpu: n / ((used.user + used.system) / 1e6), wall: n / wall };
}

const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
console.log(`load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')}; presigned URLs per second, one Node ${process.version} thread on ${cpus()[0]?.model ?? 'unknown CPU'}, ${seconds} s each`);
console.log('| kind | uncached, per CPU-s (wall) | cached, per CPU-s (wall) |');
console.log('|---|---:|---:|');
for (const [label, match, spec] of kinds) {
  const uncached = build(match, spec, 0);
  const cached = build(match, spec, 10_000);
  const u = await rate(uncached, match, true);
  const c = await rate(cached, match, false);
  console.log(`| ${label} | ${fmt(u.cpu)} (${fmt(u.wall)}) | ${fmt(c.cpu)} (${fmt(c.wall)}) |`);
  await uncached.close();
  await cached.close();
}
