// One dev CA per test process, under a temp folder: server and client certificates for
// loopback TLS and mTLS, plus a second, unrelated CA for "wrong certificate" cases.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, ensureDevCerts, issueLeaf, type DevCertFiles } from '../../src/tls/devca.ts';

type TestCerts = DevCertFiles & { otherCaCert: string; otherClientCert: string; otherClientKey: string };

// Made once when this module loads (certificate generation is asynchronous), so that
// testCerts() stays a plain call everywhere.
const made: TestCerts = await make();

export function testCerts(): TestCerts {
  return made;
}

async function make(): Promise<TestCerts> {
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-certs-'));
  const { files } = await ensureDevCerts(dir);
  const other = await createCa('Some Other CA');
  const otherClient = await issueLeaf(other, { cn: 'intruder', usage: 'client' });
  const extra = {
    otherCaCert: join(dir, 'other-ca.pem'),
    otherClientCert: join(dir, 'other-client.pem'),
    otherClientKey: join(dir, 'other-client-key.pem'),
  };
  writeFileSync(extra.otherCaCert, other.cert);
  writeFileSync(extra.otherClientCert, otherClient.cert);
  writeFileSync(extra.otherClientKey, otherClient.key);
  return { ...files, ...extra };
}
