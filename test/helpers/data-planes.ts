// The shipped authorizer-mode examples (deploy/authorizer/nginx.conf, Caddyfile) run as they
// are on real nginx and Caddy binaries, with only their addresses and file paths rewritten to
// the test's: loopback ports, the test CA's certificates, this test's Keyhole.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Test } from 'tap';
import { testCerts } from './certs.ts';
import { freePort } from './redis.ts';
import { waitListening } from './real-servers.ts';

export const EXAMPLES = resolve(import.meta.dirname, '..', '..', 'deploy', 'authorizer');

/** `text` with each [from, to] replaced; throws when one is not there (the example changed under the test). */
export function rewrite(text: string, pairs: [string | RegExp, string][]): string {
  let out = text;
  for (const [from, to] of pairs) {
    const next = out.replaceAll(from instanceof RegExp ? new RegExp(from.source, from.flags.includes('g') ? from.flags : `${from.flags}g`) : from, to);
    if (next === out) throw new Error(`the shipped example no longer holds ${String(from)}`);
    out = next;
  }
  return out;
}

function stopWith(t: Test, child: ChildProcess, dir: string): void {
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });
}

export interface DataPlane {
  /** https://localhost:PORT */
  origin: string;
  /** what the server wrote to its error log / stderr so far */
  log(): string;
}

/** deploy/authorizer/nginx.conf included in a minimal main config, in front of the Keyhole on `keyholePort`. */
export async function startNginxDataPlane(t: Test, keyholePort: number, pool: { provider: string; server: string } = { provider: 'unpooled', server: '127.0.0.1:9' }): Promise<DataPlane> {
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-authorizer-nginx-'));
  mkdirSync(join(dir, 'tmp'));
  const c = testCerts();
  const port = await freePort();
  const site = rewrite(readFileSync(join(EXAMPLES, 'nginx.conf'), 'utf8'), [
    ['server keyhole.internal:8443;', `server 127.0.0.1:${keyholePort};`],
    ['proxy_ssl_name keyhole.internal;', 'proxy_ssl_name localhost;'],
    ['listen 443 ssl;', `listen 127.0.0.1:${port} ssl;`],
    ['/etc/nginx/tls/data.example.org.crt', c.serverCert],
    ['/etc/nginx/tls/data.example.org.key', c.serverKey],
    ['/etc/nginx/tls/keyhole-ca.pem', c.caCert],
    // The example's storage group: one provider's connections kept open (the others' not).
    ['server files.internal:443;', `server ${pool.server};`],
    ['    files   $keyhole_scheme://keyhole_storage_files', `    ${pool.provider}   $keyhole_scheme://keyhole_storage_files`],
  ]);
  writeFileSync(join(dir, 'keyhole.conf'), site);
  writeFileSync(
    join(dir, 'nginx.conf'),
    `daemon off;
master_process off;
worker_processes 1;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 128; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp; proxy_temp_path ${dir}/tmp; fastcgi_temp_path ${dir}/tmp;
  uwsgi_temp_path ${dir}/tmp; scgi_temp_path ${dir}/tmp;
  include ${dir}/keyhole.conf;
}
`,
  );
  let stderr = '';
  const child = spawn('/usr/sbin/nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const log = () => stderr + (existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : '');
  stopWith(t, child, dir);
  await waitListening(port, child, 'nginx', () => `: ${log()}`);
  return { origin: `https://localhost:${port}`, log };
}

/** deploy/authorizer/Caddyfile, in front of the Keyhole on `keyholePort`. */
export async function startCaddyDataPlane(t: Test, keyholePort: number): Promise<DataPlane> {
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-authorizer-caddy-'));
  const c = testCerts();
  const port = await freePort();
  const caddyfile = rewrite(readFileSync(join(EXAMPLES, 'Caddyfile'), 'utf8'), [
    ['https://keyhole.internal:8443', `https://127.0.0.1:${keyholePort}`],
    ['tls_server_name keyhole.internal', 'tls_server_name localhost'],
    ['data.example.org {', `https://localhost:${port} {\n\tbind 127.0.0.1`],
    ['tls /etc/caddy/tls/data.example.org.crt /etc/caddy/tls/data.example.org.key', `tls ${c.serverCert} ${c.serverKey}`],
    ['/etc/caddy/tls/keyhole-ca.pem', c.caCert],
    // no port-80 redirect listener: the test owns only its own port
    ['{\n\tadmin off\n', '{\n\tadmin off\n\tauto_https disable_redirects\n'],
  ]);
  writeFileSync(join(dir, 'Caddyfile'), caddyfile);
  let out = '';
  const child = spawn('/usr/bin/caddy', ['run', '--config', join(dir, 'Caddyfile'), '--adapter', 'caddyfile'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir } });
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  stopWith(t, child, dir);
  await waitListening(port, child, 'caddy', () => `: ${out}`);
  return { origin: `https://localhost:${port}`, log: () => out };
}
