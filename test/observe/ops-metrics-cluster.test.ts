// The ops metrics over a cluster (`workers: 2`), as the primary's one /metrics answers for
// the group: build info once (the first worker's, not one per worker or a sum), requests in
// flight summed over the workers, the certificate's notAfter once every worker rotated
// (the earliest of them), reloads counted once per group reload (POST /admin/reload and
// SIGHUP to the primary), not once per worker.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import { issueLeaf } from '../../src/tls/devca.ts';
import { testCerts } from '../helpers/certs.ts';
import { dataUrl, tempFiles } from '../helpers/keyhole.ts';
import { opsYaml, spawnKeyhole } from '../helpers/spawn.ts';
import { notAfter, rotatableServerPair, series, until } from '../helpers/ops-metrics.ts';

t.setTimeout(240_000);

t.test('two workers: build info once, in-flight summed, certificate after every worker rotated, reloads once per group', async (t) => {
  const c = testCerts();
  const { certFile, keyFile } = rotatableServerPair('ops-metrics-cluster');
  const root = tempFiles('ops-metrics-cluster', { 'big.bin': Buffer.alloc(64 << 20, 1) });
  const yaml = 'workers: 2\n' + opsYaml(root, '', { tls: { cert: certFile, key: keyFile } });
  const k = await spawnKeyhole(yaml);
  t.teardown(() => k.stop());
  const metrics = async () => (await k.adminGet('/metrics')).text;
  t.equal(new Set(k.logs.filter((l) => l.msg === 'worker ready').map((l) => l.pid)).size, 2, 'two workers');

  const first = await metrics();
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  const head = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
  t.same([...series(first, 'keyhole_build_info')], [[`{version="${pkg.version}",node="${process.version}",commit="${head}"}`, 1]], 'build info: one series of value 1, not one per worker');
  t.same([...series(first, 'keyhole_tls_certificate_not_after_seconds')], [['{listener="data"}', notAfter(readFileSync(c.serverCert, 'utf8'))]], 'the workers’ certificate');
  t.same([...series(first, 'keyhole_requests_in_flight')], [['', 0]], 'nothing in flight');
  t.same([...series(first, 'keyhole_config_reloads_total')].sort(), [['{result="ok"}', 0], ['{result="refused"}', 0]], 'no reload yet');

  // Four downloads held open, each on a connection of its own: the primary hands new
  // connections to the workers in turn, so both workers hold some, and only a sum gives 4.
  const token = await k.token({ scope: ['local://files/'] });
  const agents: Dispatcher[] = [];
  t.teardown(() => Promise.all(agents.map((a) => a.destroy())));
  const held = [];
  for (let i = 0; i < 4; i++) {
    const agent = new Agent({ connect: { ca: readFileSync(c.caCert) } });
    agents.push(agent);
    const res = await request(k.base + dataUrl('local://files/big.bin'), { headers: { authorization: `Bearer ${token}` }, dispatcher: agent });
    held.push(res);
  }
  t.same(
    held.map((r) => r.statusCode),
    [200, 200, 200, 200],
  );
  t.same([...series(await metrics(), 'keyhole_requests_in_flight')], [['', 4]], 'four downloads in flight over the two workers');
  for (const r of held) r.body.destroy();
  const drained = await until(async () => (series(await metrics(), 'keyhole_requests_in_flight').get('') === 0 ? 0 : undefined), 15_000);
  t.equal(drained, 0, 'back to 0 once the clients went');

  // A renewed pair that ends later than the first one: the group's gauge (the earliest of the
  // workers') shows it only once both workers swapped it in.
  const ca = { cert: readFileSync(c.caCert, 'utf8'), key: readFileSync(c.caKey, 'utf8') };
  const renewed = await issueLeaf(ca, { cn: 'localhost', hosts: ['localhost', '127.0.0.1'], usage: 'server', days: 500 });
  t.ok(notAfter(renewed.cert) > notAfter(readFileSync(c.serverCert, 'utf8')), 'the renewed certificate ends later');
  writeFileSync(keyFile, renewed.key);
  writeFileSync(certFile, renewed.cert);
  t.equal((await k.adminPost('/admin/reload')).status, 200, 'group reload ok');
  const rotated = await until(async () => {
    const v = series(await metrics(), 'keyhole_tls_certificate_not_after_seconds').get('{listener="data"}');
    return v === notAfter(renewed.cert) ? v : undefined;
  }, 15_000);
  t.equal(rotated, notAfter(renewed.cert), 'every worker serves the renewed certificate');

  k.rewriteConfig(yaml.replace('providers:', 'colour: blue\nproviders:'));
  t.equal((await k.adminPost('/admin/reload')).status, 400, 'a bad file is refused');
  k.rewriteConfig(yaml);
  k.child.kill('SIGHUP');
  const counts = await until(async () => {
    const s = series(await metrics(), 'keyhole_config_reloads_total');
    return s.get('{result="ok"}') === 2 ? s : undefined;
  }, 15_000);
  t.same([counts?.get('{result="ok"}'), counts?.get('{result="refused"}')], [2, 1], 'two ok (POST, SIGHUP) and one refused: once per group, not per worker');
  // Nothing more arrives later (a worker's own count would show up as a third ok).
  await new Promise((r) => setTimeout(r, 500));
  const settled = series(await metrics(), 'keyhole_config_reloads_total');
  t.same([settled.get('{result="ok"}'), settled.get('{result="refused"}')], [2, 1], 'still 2 and 1');
  t.same([...series(await metrics(), 'keyhole_build_info')].length, 1, 'still one build info series');
});
