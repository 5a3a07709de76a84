// The embedded default behind `npm start` / `keyhole serve` without --config: dev
// certificates, an HS256 dev secret and an admin token under certs/ (made on first
// start), the sample folder as a `local` provider, revocation in memory.
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDevCerts } from '../tls/devca.ts';
import { parseConfig } from './load.ts';
import type { Config } from './schema.ts';

/** The package root: dist/config/default.js or src/config/default.ts → two levels up. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SAMPLES_DIR = join(PACKAGE_ROOT, 'samples');

export const DEV_ISSUER = 'keyhole-dev';
export const DEV_AUDIENCE = 'keyhole';

export function defaultYaml(certDir: string, port: number, adminPort: number): string {
  return `# Keyhole embedded default (development only)
server:
  listen: { host: 127.0.0.1, port: ${port} }
  tls: { cert: ${join(certDir, 'server.pem')}, key: ${join(certDir, 'server-key.pem')} }
admin:
  listen: { host: 127.0.0.1, port: ${adminPort} }
  token: \${file:${join(certDir, 'dev-admin.token')}}
auth:
  issuer: ${DEV_ISSUER}
  audience: ${DEV_AUDIENCE}
  keys:
    - kid: dev
      algorithms: [HS256]
      secret: \${file:${join(certDir, 'dev-hs256.secret')}}
revocation: { store: memory }
providers:
  - name: samples
    kind: local
    match: local://samples/
    root: ${SAMPLES_DIR}
`;
}

/** Makes the dev material when missing; returns whether anything was created. */
export async function ensureDevMaterial(certDir: string): Promise<boolean> {
  const { created } = await ensureDevCerts(certDir);
  let made = created;
  for (const name of ['dev-hs256.secret', 'dev-admin.token']) {
    const file = join(certDir, name);
    if (!existsSync(file)) {
      writeFileSync(file, randomBytes(32).toString('base64url') + '\n', { mode: 0o600 });
      made = true;
    }
  }
  return made;
}

export async function defaultConfig(opts: { certDir?: string; port?: number; adminPort?: number } = {}): Promise<Config> {
  const certDir = resolve(opts.certDir ?? 'certs');
  await ensureDevMaterial(certDir);
  return parseConfig(defaultYaml(certDir, opts.port ?? 8443, opts.adminPort ?? 9091), { baseDir: process.cwd() });
}
