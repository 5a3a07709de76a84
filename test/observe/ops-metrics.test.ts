// The metrics ops watch the process by, on a real `keyhole serve`: what build runs, when its
// certificate ends (and that a rotation moves it), reloads ok and refused, requests in flight
// while a download is held open and none after.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { issueLeaf } from '../../src/tls/devca.ts';
import { testCerts } from '../helpers/certs.ts';
import { dataUrl, tempFiles } from '../helpers/keyhole.ts';
import { opsYaml, spawnKeyhole } from '../helpers/spawn.ts';
import { notAfter, rotatableServerPair, series, until } from '../helpers/ops-metrics.ts';

t.setTimeout(180_000);

t.test('build info, certificate expiry, reloads and in-flight requests on /metrics', async (t) => {
  const c = testCerts();
  const { certFile, keyFile } = rotatableServerPair('ops-metrics');
  const root = tempFiles('ops-metrics', { 'big.bin': Buffer.alloc(64 << 20, 1) });
  const yaml = opsYaml(root, '', { tls: { cert: certFile, key: keyFile } });
  const k = await spawnKeyhole(yaml);
  t.teardown(() => k.stop());
  const metrics = async () => (await k.adminGet('/metrics')).text;

  const first = await metrics();
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  const head = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
  t.same([...series(first, 'keyhole_build_info')], [[`{version="${pkg.version}",node="${process.version}",commit="${head}"}`, 1]], 'build info: version, node, commit');

  t.same([...series(first, 'keyhole_tls_certificate_not_after_seconds')], [['{listener="data"}', notAfter(readFileSync(c.serverCert, 'utf8'))]], 'the served certificate’s notAfter');
  t.same([...series(first, 'keyhole_config_reloads_total')].sort(), [['{result="ok"}', 0], ['{result="refused"}', 0]], 'both reload results from 0');
  t.same([...series(first, 'keyhole_requests_in_flight')], [['', 0]], 'nothing in flight (the scrape does not count itself)');

  // A download held open: the client reads nothing, so the 64 MiB stream waits on backpressure.
  const held = await request(k.base + dataUrl('local://files/big.bin'), { headers: { authorization: `Bearer ${await k.token({ scope: ['local://files/'] })}` }, dispatcher: k.dispatcher });
  t.equal(held.statusCode, 200);
  t.same([...series(await metrics(), 'keyhole_requests_in_flight')], [['', 1]], 'one download in flight');
  held.body.destroy();
  let after = -1;
  for (let i = 0; i < 50 && after !== 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = series(await metrics(), 'keyhole_requests_in_flight').get('') ?? -1;
  }
  t.equal(after, 0, 'back to 0 once the client went');

  // A renewed certificate (another notAfter) is served and reported without a restart.
  const ca = { cert: readFileSync(c.caCert, 'utf8'), key: readFileSync(c.caKey, 'utf8') };
  const renewed = await issueLeaf(ca, { cn: 'localhost', hosts: ['localhost', '127.0.0.1'], usage: 'server', days: 30 });
  writeFileSync(keyFile, renewed.key);
  writeFileSync(certFile, renewed.cert);
  t.equal((await k.adminPost('/admin/reload')).status, 200, 'reload ok');
  const reloaded = await metrics();
  t.same([...series(reloaded, 'keyhole_tls_certificate_not_after_seconds')], [['{listener="data"}', notAfter(renewed.cert)]], 'the renewed certificate’s notAfter');
  t.equal(series(reloaded, 'keyhole_config_reloads_total').get('{result="ok"}'), 1, 'one reload ok');

  k.rewriteConfig(yaml.replace('providers:', 'colour: blue\nproviders:'));
  t.equal((await k.adminPost('/admin/reload')).status, 400, 'a bad file is refused');
  const refused = series(await metrics(), 'keyhole_config_reloads_total');
  t.same([refused.get('{result="ok"}'), refused.get('{result="refused"}')], [1, 1], 'one refused, the ok count kept');

  // Files replaced with no reload at all: the watcher swaps the certificate and the gauge follows.
  const rotated = await issueLeaf(ca, { cn: 'localhost', hosts: ['localhost', '127.0.0.1'], usage: 'server', days: 90 });
  writeFileSync(keyFile, rotated.key);
  writeFileSync(certFile, rotated.cert);
  const seen = await until(async () => {
    const v = series(await metrics(), 'keyhole_tls_certificate_not_after_seconds').get('{listener="data"}');
    return v === notAfter(rotated.cert) ? v : undefined;
  });
  t.equal(seen, notAfter(rotated.cert), 'the certificate rotated by the file watcher');
  t.not(notAfter(rotated.cert), notAfter(renewed.cert), 'a notAfter of its own');
  const unchanged = series(await metrics(), 'keyhole_config_reloads_total');
  t.same([unchanged.get('{result="ok"}'), unchanged.get('{result="refused"}')], [1, 1], 'a certificate rotation is not a config reload');

  // SIGHUP reloads as POST /admin/reload does, and is counted the same way.
  k.rewriteConfig(yaml);
  k.child.kill('SIGHUP');
  const hup = await until(async () => {
    const s = series(await metrics(), 'keyhole_config_reloads_total');
    return s.get('{result="ok"}') === 2 ? s : undefined;
  });
  t.same([hup?.get('{result="ok"}'), hup?.get('{result="refused"}')], [2, 1], 'SIGHUP: one more ok');
});

