// `workers: 2`: one process's counters would let each worker allow the whole limit. With the
// Redis store both workers spend one rate bucket and one byte quota (requests spread over both
// on fresh connections, refusals audited by both); with the memory store `check-config`
// refuses the configuration before anything runs.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Agent } from 'undici';
import { startRedis } from '../helpers/redis.ts';
import { spawnKeyhole, writeConfig, type LogLine } from '../helpers/spawn.ts';
import { ADMIN_TOKEN, baseYaml, dataUrl, filesProviderYaml, tempFiles, TEST_SECRET } from '../helpers/keyhole.ts';
import { testCerts } from '../helpers/certs.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const BURST = 12;

t.test('workers: 2 on Redis: one rate bucket and one byte quota for both workers', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const root = tempFiles('limits-workers', { 'a.bin': Buffer.alloc(1000, 1) });
  const yaml =
    'workers: 2\n' +
    baseYaml(
      filesProviderYaml(root) +
        `redis:
${redis.yaml('  ', 'commandTimeout: 2s')}
limits:
  store: redis
  rules:
    - name: annotator
      rate: { perSecond: 0.01, burst: ${BURST} }
    - name: bulk
      when: { sub: [bulk] }
      per: [sub, provider]
      bytes: { 1h: 10000 }
`,
      { log: '{ level: info, audit: true }' },
    );
  const k = await spawnKeyhole(yaml, { startTimeoutMs: 90_000 });
  t.teardown(() => k.stop());
  // A fresh connection per request, so the primary spreads them over both workers.
  // One HTTP/1.1 connection per request, so the primary spreads them over both workers (HTTP/2 would multiplex them onto one).
  const fresh = new Agent({ connect: { ca: readFileSync(testCerts().caCert) }, pipelining: 0, allowH2: false });
  t.teardown(() => fresh.close());
  const get = async (sub: string) => (await k.get(dataUrl('local://files/a.bin'), { headers: { authorization: `Bearer ${await k.token({ sub })}` }, dispatcher: fresh })).status;

  const statuses: number[] = [];
  for (let i = 0; i < 3 * BURST; i++) statuses.push(await get('alice'));
  const served = statuses.filter((s) => s === 200).length;
  t.comment(`rate over 2 workers: ${served} of ${statuses.length} served, burst ${BURST}`);
  t.ok(served <= BURST, `at most the burst across both workers (${served})`);
  t.ok(served >= BURST - 2 * Math.floor(BURST * 0.125), 'at least the burst less what the other worker may hold');
  t.ok(statuses.every((s) => s === 200 || s === 429), 'the rest refused with 429');

  const by = (reason: string) => new Set(k.logs.filter((l: LogLine) => l.kind === 'audit' && l.audit !== undefined && (l.audit as { sub?: string; reason?: string }).sub === 'alice' && (l.audit as { reason?: string }).reason === reason).map((l) => l.worker));
  await k.waitForLog(() => by('rate_limited').size === 2 && by('ok').size === 2, 10_000, 'both workers served and refused alice');
  t.pass('both workers served alice, and both refused her: they share one bucket');

  const bulk: number[] = [];
  for (let i = 0; i < 20; i++) bulk.push(await get('bulk'));
  const bulkServed = bulk.filter((s) => s === 200).length;
  t.ok(bulkServed >= 10 && bulkServed <= 12, `a 10,000-byte quota over both workers: ${bulkServed} downloads of 1,000 bytes served`);
  t.equal(bulk.slice(-5).join(), '429,429,429,429,429', 'then refused on every worker');

  // The primary's admin listener reads the one count (the workers' last bytes reach Redis within a sync).
  type Usage = { counters: { rule: string; limit: string; value: number; who: Record<string, string> }[] };
  const read = async () => ((await (await fetch(`${k.admin}/admin/usage?sub=bulk`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as Usage).counters.find((c) => c.rule === 'bulk');
  let bulkUsage = await read();
  for (let i = 0; i < 20 && bulkUsage?.value !== bulkServed * 1000; i++) {
    await new Promise((r) => setTimeout(r, 100));
    bulkUsage = await read();
  }
  t.match(bulkUsage, { limit: 'bytes', value: bulkServed * 1000, who: { sub: 'bulk', provider: 'files' } }, 'usage through the primary');
});

t.test('check-config refuses a memory limits store for several workers', async (t) => {
  const root = tempFiles('limits-workers-memory');
  const limits = 'limits:\n  rules:\n    - name: annotator\n      rate: { perSecond: 1 }\n';
  const run = (yaml: string) =>
    spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli.ts'), 'check-config', writeConfig(yaml)], {
      cwd: ROOT,
      env: { ...process.env, KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN },
      encoding: 'utf8',
    });
  const bad = run('workers: 2\n' + baseYaml(filesProviderYaml(root) + limits));
  t.equal(bad.status, 2, 'exit 2: a configuration with problems');
  t.match(bad.stdout + bad.stderr, /limits\.store: limits\.store memory counts in one process: with workers: 2 each worker would allow the whole limits; use store: redis/);
  const good = run(baseYaml(filesProviderYaml(root) + limits));
  t.equal(good.status, 0, `workers: 1 with memory is fine: ${good.stdout}${good.stderr}`);
});
