// What the /metrics tests of a spawned Keyhole share: reading series out of the exposition,
// polling until a scrape shows something, and a certificate pair in files a test may rotate.
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testCerts } from './certs.ts';
import { tmpDir } from './cli.ts';

/** `name{labels} value` lines of one metric, as a map from the label text to the value. */
export function series(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) out.set(m[1] ?? '', Number(m[2]));
  return out;
}

/** Polls `check` every 100 ms for up to `timeoutMs`: its first defined answer, or undefined. */
export async function until<T>(check: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T | undefined> {
  for (let i = 0; i < timeoutMs / 100; i++) {
    const v = await check();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

/** A certificate's notAfter, Unix seconds: what keyhole_tls_certificate_not_after_seconds reports. */
export const notAfter = (pem: string): number => Math.floor(new X509Certificate(pem).validToDate.getTime() / 1000);

/** The test CA's server pair copied into files of a fresh directory, for a test to rotate. */
export function rotatableServerPair(prefix: string): { certFile: string; keyFile: string } {
  const c = testCerts();
  const dir = tmpDir(prefix);
  const certFile = join(dir, 'server.pem');
  const keyFile = join(dir, 'server-key.pem');
  writeFileSync(certFile, readFileSync(c.serverCert));
  writeFileSync(keyFile, readFileSync(c.serverKey));
  return { certFile, keyFile };
}
