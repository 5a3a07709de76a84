// Authorizer mode's shared setup: a Keyhole with an `authorizer:` section in front of a real
// upstream that demands a credential per folder (BasicAuth under /files/, a bearer token
// under /b/), plus providers no data plane can read (local; http with a custom header), and a
// way to revoke. Used by the route's own tests and by the nginx and Caddy end-to-end tests.
import type { Test } from 'tap';
import { request } from 'undici';
import { ADMIN_TOKEN, baseYaml, indentLines, localProviderItem, startKeyhole, tempFiles, type Running } from './keyhole.ts';
import { startUpstream, type Upstream } from './upstream.ts';

export const UP_USER = 'keyhole';
export const UP_PASS = 'up-s3cret-passw0rd';
export const UP_TOKEN = 'upstream-bearer-token-0123456789';
export const BASIC = `Basic ${Buffer.from(`${UP_USER}:${UP_PASS}`).toString('base64')}`;

/** Every form of the injected credentials, for "never reaches the client" checks. */
export const SECRETS = [UP_PASS, UP_TOKEN, Buffer.from(`${UP_USER}:${UP_PASS}`).toString('base64')];

export interface AuthorizerSetup {
  k: Running;
  up: Upstream;
  /** a token for every provider's URIs, with jti `tok-1` */
  token: string;
  revoke(jti: string): Promise<void>;
}

export interface AuthorizerOptions {
  /** authorizer.peers; loopback by default (every test client is on it) */
  peers?: string[];
  /** more top-level YAML (limits:) */
  extra?: string;
  /** objects of the upstream by path (/files/…: BasicAuth, /b/…: bearer, /o/…: no credential) */
  objects?: Record<string, { body: Buffer | string; type?: string }>;
  /** no authorizer section at all */
  off?: boolean;
}

export async function authorizerKeyhole(t: Test, opts: AuthorizerOptions = {}): Promise<AuthorizerSetup> {
  const up = await startUpstream({
    objects: opts.objects ?? { '/files/cat.jpg': { body: Buffer.alloc(1024, 7), type: 'image/jpeg' } },
    // Each folder demands its provider's credential; a request without it gets 401.
    override: (req, res) => {
      const want = req.url!.startsWith('/files/') ? BASIC : req.url!.startsWith('/b/') ? `Bearer ${UP_TOKEN}` : undefined;
      if (want !== undefined && req.headers.authorization === want) return false;
      // The open provider's upstream takes no credential, and must never see one (the client's token included).
      if (req.url!.startsWith('/o/') && req.headers.authorization === undefined) return false;
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Basic realm="upstream"' });
      res.end('upstream says: unauthorized');
      return true;
    },
  });
  t.teardown(() => up.close());
  const peers = opts.peers ?? ['127.0.0.1', '::1'];
  const yaml = baseYaml(`providers:
  - name: corp
    kind: http
    match: https://data.corp/
    baseUrl: ${up.origin}/files/
    allowPrivateNetworks: true
    auth: { type: basic, username: ${UP_USER}, password: "\${env:UP_PASS}" }
  - name: bearer
    kind: http
    match: https://bearer.corp/
    baseUrl: ${up.origin}/b/
    allowPrivateNetworks: true
    auth: { type: bearer, token: "\${env:UP_TOKEN}" }
  - name: open
    kind: http
    match: https://open.corp/
    baseUrl: ${up.origin}/o/
    allowPrivateNetworks: true
  - name: keyed
    kind: http
    match: https://keyed.corp/
    baseUrl: ${up.origin}/k/
    allowPrivateNetworks: true
    auth: { type: header, name: X-Api-Key, value: "\${env:UP_TOKEN}" }
${localProviderItem('files', tempFiles('authorizer'))}${opts.off ? '' : `authorizer:\n  peers: [${peers.map((p) => `"${p}"`).join(', ')}]\n`}${indentLines(opts.extra, '')}`);
  const k = await startKeyhole(yaml, { env: { UP_PASS, UP_TOKEN } });
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['https://data.corp/', 'https://bearer.corp/', 'https://open.corp/', 'https://keyed.corp/', 'local://files/'], jti: 'tok-1' });
  return {
    k,
    up,
    token,
    async revoke(jti) {
      const res = await request(`${k.admin}/admin/revoke`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ jti }) });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`revoke answered ${res.statusCode}`);
    },
  };
}
