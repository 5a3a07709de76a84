// Certificate rotation on a real `keyhole serve`: new files on disk are picked up (file
// watch, and SIGHUP) by swapping the TLS context, seen by a new TLS client, with no
// restart; a half-written or mismatched pair is ignored and the old certificate stays.
import t from 'tap';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { DEFAULT_HOSTS, issueLeaf } from '../../src/tls/devca.ts';
import { testCerts } from '../helpers/certs.ts';
import { dataUrl, tempFiles } from '../helpers/keyhole.ts';
import { opsYaml, spawnKeyhole } from '../helpers/spawn.ts';

// Real processes on a shared 2-core machine: generous, but bounded.
t.setTimeout(240000);

/** The serial number a brand-new TLS client is shown. */
function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ port, host: '127.0.0.1', servername: 'localhost', ca: readFileSync(testCerts().caCert) }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.end();
      resolve(serial.toUpperCase());
    });
    socket.once('error', reject);
  });
}

/** Writes the pair the way ops tooling does: complete files moved into place. */
function install(dir: string, pair: { cert: string; key: string }): string {
  writeFileSync(join(dir, '.key.tmp'), pair.key);
  writeFileSync(join(dir, '.cert.tmp'), pair.cert);
  renameSync(join(dir, '.key.tmp'), join(dir, 'server-key.pem'));
  renameSync(join(dir, '.cert.tmp'), join(dir, 'server.pem'));
  return new X509Certificate(pair.cert).serialNumber.toUpperCase();
}

t.test('a rotated certificate is served to new clients without a restart', async (t) => {
  const c = testCerts();
  const ca = { cert: readFileSync(c.caCert, 'utf8'), key: readFileSync(c.caKey, 'utf8') };
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-ops-tls-'));
  const first = install(dir, await issueLeaf(ca, { cn: 'first', hosts: DEFAULT_HOSTS, usage: 'server' }));
  const root = tempFiles('ops-data', { 'a.txt': 'hello\n' });
  const k = await spawnKeyhole(opsYaml(root, '', { tls: { cert: join(dir, 'server.pem'), key: join(dir, 'server-key.pem') } }));
  t.teardown(() => k.stop());
  const pid = k.child.pid;
  t.equal(await servedSerial(k.dataPort), first, 'the first certificate is served');

  // Rotation by the file watch alone.
  const second = install(dir, await issueLeaf(ca, { cn: 'second', hosts: DEFAULT_HOSTS, usage: 'server' }));
  const seen = await k.waitForLog((l) => l.msg === 'certificate reloaded' && (l.certificate as { serial: string }).serial.toUpperCase() === second);
  t.equal((seen.certificate as { fingerprint: string }).fingerprint, new X509Certificate(readFileSync(join(dir, 'server.pem'))).fingerprint256, 'the log names the new fingerprint');
  t.equal(await servedSerial(k.dataPort), second, 'a new TLS client sees the new certificate');
  const token = await k.token();
  t.equal((await k.get(dataUrl('local://files/a.txt'), { headers: { authorization: `Bearer ${token}` } })).status, 200, 'and is served over it');

  // A pair that does not belong together is refused; the second certificate stays.
  const third = await issueLeaf(ca, { cn: 'third', hosts: DEFAULT_HOSTS, usage: 'server' });
  const fourth = await issueLeaf(ca, { cn: 'fourth', hosts: DEFAULT_HOSTS, usage: 'server' });
  install(dir, { cert: third.cert, key: fourth.key });
  await k.waitForLog((l) => l.msg.startsWith('certificate files are not a usable pair'));
  t.equal(await servedSerial(k.dataPort), second, 'a mismatched pair never reaches a handshake');

  // Completed, then SIGHUP (the path for hosts without file watching): the new pair is served.
  writeFileSync(join(dir, 'server-key.pem'), third.key);
  const thirdSerial = new X509Certificate(third.cert).serialNumber.toUpperCase();
  k.child.kill('SIGHUP');
  await k.waitForLog((l) => l.msg === 'configuration reloaded' || (l.msg === 'certificate reloaded' && (l.certificate as { serial: string }).serial.toUpperCase() === thirdSerial));
  await k.waitForLog((l) => l.msg === 'configuration reloaded');
  t.equal(await servedSerial(k.dataPort), thirdSerial, 'the completed pair is served');
  t.equal(k.child.pid, pid, 'same process throughout');
  t.equal(k.child.exitCode, null, 'never restarted');
});
