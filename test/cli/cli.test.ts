// The CLI contracts ops scripts and tests rely on, run as real child processes:
// token, check-config, certs, serve (bad config, and the embedded default end to end).
import t from 'tap';
import { spawn } from 'node:child_process';
import { X509Certificate, createSecretKey } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { jwtVerify } from 'jose';
import { testCerts } from '../helpers/certs.ts';
import { CLI_ARGS, runCli, tmpDir } from '../helpers/cli.ts';
import { testKey } from '../auth/fixtures.ts';

// Seven spawns, each loading the TypeScript sources through tsx: about a minute on an
// idle 2-core machine, several under load and coverage.
t.setTimeout(600_000);

const SECRET = 'cli-test-secret-0123456789abcdef-0123456789';

const run = (args: string[], env: Record<string, string> = {}, cwd = process.cwd()) => runCli(args, { env, cwd });
const tmp = tmpDir;

function goodConfig(dir: string): string {
  const c = testCerts();
  mkdirSync(join(dir, 'files'), { recursive: true });
  const file = join(dir, 'keyhole.yaml');
  writeFileSync(
    file,
    `server:
  listen: { host: 127.0.0.1, port: 0 }
  tls: { cert: ${c.serverCert}, key: ${c.serverKey} }
auth:
  issuer: cli-issuer
  audience: keyhole
  keys:
    - kid: k1
      algorithms: [HS256]
      secret: \${env:CLI_SECRET}
providers:
  - { name: files, kind: local, match: "local://files/", root: files }
`,
  );
  return file;
}

t.test('token: a JWT alone on stdout that verifies with the configured key', async (t) => {
  const file = goodConfig(tmp('token'));
  const r = run(['token', '--config', file, '--sub', 'bob', '--scope', 'local://files/a/', '--scope', 'local://files/b/', '--org', 'acme', '--ttl', '120'], { CLI_SECRET: SECRET });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/, 'the token alone, one line');
  const { payload, protectedHeader } = await jwtVerify(r.stdout.trim(), createSecretKey(Buffer.from(SECRET)), { issuer: 'cli-issuer', audience: 'keyhole' });
  t.match(payload, { sub: 'bob', scope: ['local://files/a/', 'local://files/b/'], org: 'acme' });
  t.equal(payload.exp! - payload.iat!, 120);
  t.equal(protectedHeader.kid, 'k1');
  t.type(payload.jti, 'string');


});

t.test('token without --config uses the embedded default key', async (t) => {
  const certDir = tmp('default-token');
  const r = run(['token', '--cert-dir', certDir, '--sub', 'dev', '--scope', 'local://samples/']);
  t.equal(r.code, 0, r.stderr);
  const secret = readFileSync(join(certDir, 'dev-hs256.secret'), 'utf8').trim();
  const { payload } = await jwtVerify(r.stdout.trim(), createSecretKey(Buffer.from(secret)), { issuer: 'keyhole-dev', audience: 'keyhole' });
  t.equal(payload.sub, 'dev');
});

t.test('check-config: every problem with its file and path in one pass, exit 2', async (t) => {
  const dir = tmp('check');
  const file = join(dir, 'bad.yaml');
  writeFileSync(
    file,
    `server:
  listen: { host: 127.0.0.1, port: 8443 }
  tls: { cert: missing.pem, key: missing-key.pem }
  colour: blue
auth:
  issuer: i
  audience: a
  keys:
    - { kid: k1, algorithms: [HS256], secret: inline-secret-is-refused-0123456789 }
providers:
  - { name: one, kind: local, match: "local://one/", root: /nonexistent/folder }
  - name: two
    kind: http
    match: https://data.corp/
    baseUrl: https://files.internal/
    auth: { type: basic, username: u, password: "\${env:DATA_PASS}" }
  - { name: one, kind: local, match: "local://one/", root: . }
`,
  );
  const r = run(['check-config', file], { DATA_PASS: '' });
  t.equal(r.code, 2, 'a configuration with problems: exit 2, as serve');
  // Every problem in one pass: the schema's, the files', the providers' (none waits for another).
  t.same(
    r.stdout.split('\n').filter((l) => l.startsWith('  ')),
    [
      'providers[1].auth.password: environment variable DATA_PASS is not set',
      'server.colour: unknown key (known here: listen, tls, http2, insecurePlainHttp, redirectHttp, publicUrl, hsts, timeouts, drainTimeout, maxHeaderSize, maxUriLength)',
      'auth.keys[0].secret: must be a reference ${env:NAME} or ${file:/path}, never an inline secret',
      'server.tls.cert: cannot read missing.pem: ENOENT',
      'server.tls.key: cannot read missing-key.pem: ENOENT',
      'providers[0].root: folder /nonexistent/folder cannot be read (ENOENT)',
      'providers[2].name: duplicate of providers[0].name',
      'providers[2].match: same prefix as providers[0]',
    ].map((l) => `  ${file}: ${l}`),
  );
  t.match(r.stdout, /problem\(s\)/);
  t.notOk(r.stdout.includes('inline-secret-is-refused'), 'the inline secret is not echoed');

});

t.test('config.example.yaml passes check-config', async (t) => {
  // The example names certs/, keys/ and samples/ beside itself: lay them out in a copy.
  const dir = tmp('example');
  cpSync(join(process.cwd(), 'config.example.yaml'), join(dir, 'config.example.yaml'));
  const c = testCerts();
  mkdirSync(join(dir, 'certs'));
  mkdirSync(join(dir, 'keys'));
  mkdirSync(join(dir, 'samples'));
  for (const [from, to] of [[c.serverCert, 'server.pem'], [c.serverKey, 'server-key.pem'], [c.caCert, 'ca.pem'], [c.clientCert, 'client.pem'], [c.clientKey, 'client-key.pem']]) {
    cpSync(from!, join(dir, 'certs', to!));
  }
  writeFileSync(join(dir, 'keys', 'app-rsa-1.pub.pem'), testKey('rs').pem);
  const env = { KEYHOLE_ADMIN_TOKEN: 'admin-0123456789', KEYHOLE_HS256_SECRET: SECRET, DATA_PASS: 'p' };
  const r = run(['check-config', join(dir, 'config.example.yaml')], env);
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.match(r.stdout, /OK/);
  t.notMatch(r.stderr, /warning/, 'the example sets publicUrl and nests no roots: nothing to warn about');
  const unset = join(dir, 'no-public-url.yaml');
  writeFileSync(unset, readFileSync(join(dir, 'config.example.yaml'), 'utf8').replace(/^\s*publicUrl:.*$/m, ''));
  const warned = run(['check-config', unset], env);
  t.equal(warned.code, 0, 'a warning is not a problem');
  t.match(warned.stderr, /no-public-url\.yaml: warning: server\.publicUrl: not set/);
  // Every env reference in the example is one the test set: none missing.
  const refs = [...readFileSync(join(dir, 'config.example.yaml'), 'utf8').matchAll(/^[^#\n]*\$\{env:([A-Z0-9_]+)\}/gm)].map((m) => m[1]);
  t.same([...new Set(refs)].sort(), Object.keys(env).sort());
});

t.test('certs: writes a dev CA, server and client certificates', async (t) => {
  const dir = join(tmp('certs'), 'out');
  const r = run(['certs', '--dir', dir, '--host', 'keyhole.test', '--host', '10.1.2.3']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /created dev certificates/);
  for (const f of ['ca.pem', 'ca-key.pem', 'server.pem', 'server-key.pem', 'client.pem', 'client-key.pem', 'dev-hs256.secret', 'dev-admin.token']) t.ok(existsSync(join(dir, f)), f);
  t.equal(statSync(join(dir, 'server-key.pem')).mode & 0o077, 0, 'private keys are not readable by others');
  const ca = new X509Certificate(readFileSync(join(dir, 'ca.pem')));
  const server = new X509Certificate(readFileSync(join(dir, 'server.pem')));
  const client = new X509Certificate(readFileSync(join(dir, 'client.pem')));
  t.ok(ca.ca, 'CA certificate');
  t.ok(server.verify(ca.publicKey) && client.verify(ca.publicKey), 'both leaves signed by the CA');
  t.match(server.subjectAltName, /DNS:keyhole\.test/);
  t.match(server.subjectAltName, /IP Address:10\.1\.2\.3/);
  t.ok(server.checkHost('keyhole.test'));
});

t.test('serve refuses a bad config before it listens', async (t) => {
  const file = goodConfig(tmp('serve-bad'));
  const r = run(['serve', '--config', file], { CLI_SECRET: 'short' });
  t.equal(r.code, 2);
  t.match(r.stderr, /configuration has 1 problem\(s\):\n {2}auth\.keys\[0\]\.secret: HMAC secret must be at least 32 bytes/);
  t.notOk(r.stdout.includes('listening'), 'never listened');
});

t.test('serve --config logs each check-config warning once, as a warn line with its key, then listens', async (t) => {
  const file = goodConfig(tmp('serve-warn'));
  const risky = readFileSync(file, 'utf8').replace('auth:\n', 'cors: { origins: ["http://labeling.example.org"] }\nauth:\n');
  writeFileSync(file, risky);
  const checked = run(['check-config', file], { CLI_SECRET: SECRET });
  t.equal(checked.code, 0, 'warnings are not problems');
  t.match(checked.stdout, /OK/);
  const printed = checked.stderr.split('\n').filter((l) => l.includes('warning: '));
  t.same(printed.map((l) => /warning: ([^:]+):/.exec(l)![1]), ['server.publicUrl', 'cors.origins'], checked.stderr);

  const child = spawn(process.execPath, [...CLI_ARGS, 'serve', '--config', file], { env: { ...process.env, CLI_SECRET: SECRET }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      stdout += d.toString();
      if (stdout.includes('keyhole listening')) resolve();
    });
    child.on('exit', () => reject(new Error(`serve exited: ${stdout}`)));
  });
  const lines = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number | string; path?: string; msg: string });
  const warned = lines.filter((l) => l.path !== undefined);
  t.same(warned.map((l) => l.path), ['server.publicUrl', 'cors.origins'], 'the same warnings, once each');
  for (const l of warned) t.ok(l.level === 40 || l.level === 'warn', `${l.path}: logged at warn`);
  t.match(warned[0]!.msg, /^server\.publicUrl: not set: the HTTP redirect and POST \/v1\/session's Origin check/);
  t.ok(lines.findIndex((l) => l.msg === 'keyhole listening') > lines.indexOf(warned[1]!), 'before it listens');
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});

t.test('serve on the embedded default: the printed URL serves a sample', async (t) => {
  const certDir = tmp('serve-default');
  const child = spawn(process.execPath, [...CLI_ARGS, 'serve', '--cert-dir', certDir], {
    env: { ...process.env, KEYHOLE_PORT: '0', KEYHOLE_ADMIN_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d) => {
      stderr += d.toString();
      const m = /(https:\/\/localhost:(\d+)\/v1\/data\?uri=\S+&token=\S+)/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    child.on('exit', () => reject(new Error(`serve exited: ${stderr}`)));
  });
  t.notMatch(url, /:0\//, 'the real port, not 0');
  t.match(stderr, /keyhole token --sub/, 'says how to get a token');
  const dispatcher = new Agent({ connect: { ca: readFileSync(join(certDir, 'ca.pem')) } });
  t.teardown(() => dispatcher.close());
  const res = await request(url, { dispatcher });
  t.equal(res.statusCode, 200);
  const body = Buffer.from(await res.body.arrayBuffer());
  const sample = decodeURIComponent(/uri=([^&]+)/.exec(url)![1]!).replace('local://samples/', '');
  t.ok(body.equals(readFileSync(join(process.cwd(), 'samples', sample))), `serves samples/${sample}`);
  const noToken = await request(url.replace(/&token=.*/, ''), { dispatcher });
  t.equal(noToken.statusCode, 401);
  await noToken.body.dump();
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM drains and exits 0');
});
