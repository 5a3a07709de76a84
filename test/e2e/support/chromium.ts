// Headless Chromium for the browser tests: Debian's `chromium`, driven by playwright-core
// (nothing downloads a browser). It trusts the test server certificate by its SPKI hash
// (--ignore-certificate-errors-spki-list), never through a blanket ignoreHTTPSErrors.
import type { Test } from 'tap';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { testCerts } from '../../helpers/certs.ts';

export const CHROMIUM = '/usr/bin/chromium';

/** Whether Chromium is here; when not, the test fails: CI installs it (.ci/run), and failing loudly beats a silent skip. */
export function chromiumPresent(t: Test): boolean {
  if (existsSync(CHROMIUM)) return true;
  t.fail(`${CHROMIUM} is missing: apt-get install -y chromium`);
  t.end();
  return false;
}

/** The flags every test browser runs with (the server certificate's trust among them), then `extra`. */
export function chromiumArgs(extra: string[] = []): string[] {
  const spki = createHash('sha256')
    .update(new X509Certificate(readFileSync(testCerts().serverCert)).publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64');
  return [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--ignore-certificate-errors-spki-list=${spki}`,
    ...extra,
  ];
}

/** A browser on a fresh temporary profile, media allowed to play without a gesture; closed, profile and all, on teardown. */
export async function launchChromium(t: Test, extraArgs: string[] = []): Promise<BrowserContext> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'keyhole-chromium-'));
  t.teardown(() => rmSync(userDataDir, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', ...chromiumArgs(['--autoplay-policy=no-user-gesture-required', ...extraArgs])],
  });
  t.teardown(() => context.close());
  return context;
}
