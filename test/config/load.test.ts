// Config loading: references, refusals, and every problem listed at once with its path.
import t from 'tap';
import { inspect } from 'node:util';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfigFile, parseConfig } from '../../src/config/load.ts';
import { testCerts } from '../helpers/certs.ts';

const SECRET = 'config-test-secret-0123456789abcdef-012345';
const dir = mkdtempSync(join(tmpdir(), 'keyhole-config-'));
writeFileSync(join(dir, 'hs.secret'), `${SECRET}\n`);
writeFileSync(join(dir, 'admin.token'), 'admin-from-file');

function yaml(opts: { secret?: string; providers?: string; extra?: string } = {}): string {
  const c = testCerts();
  return `server:
  listen: { host: 127.0.0.1, port: 0 }
  tls: { cert: ${c.serverCert}, key: ${c.serverKey} }
admin:
  token: \${file:admin.token}
auth:
  issuer: i
  audience: a
  keys:
    - { kid: k1, algorithms: [HS256], secret: ${opts.secret ?? '"${file:hs.secret}"'} }
${opts.extra ?? ''}providers:
${opts.providers ?? `  - { name: files, kind: local, match: "local://files/", root: ${dir} }`}
`;
}

function problems(text: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(text, { env, baseDir: dir });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message));
    throw err;
  }
  return [];
}

t.test('references: ${env:} and ${file:} (relative to the config folder, newline trimmed)', async (t) => {
  const cfg = parseConfig(yaml({ secret: '"${env:HS}"' }), { env: { HS: SECRET }, baseDir: dir });
  const key = cfg.auth.keys[0]!;
  t.ok('secret' in key && key.secret.reveal() === SECRET);
  t.equal(cfg.admin.token!.reveal(), 'admin-from-file');
  const fromFile = parseConfig(yaml(), { baseDir: dir });
  t.equal('secret' in fromFile.auth.keys[0]! && fromFile.auth.keys[0]!.secret.reveal(), SECRET, 'trailing newline removed');
  t.notOk(JSON.stringify(cfg).includes(SECRET), 'a config serialised holds no secret');
  t.notOk(inspect(cfg, { depth: 10 }).includes(SECRET), 'nor when inspected');
  t.match(JSON.stringify(cfg), /\[secret env:HS\]/);
  t.equal(cfg.server.timeouts.headers, 10_000, 'defaults applied');
  t.equal(cfg.server.tls!.minVersion, 'TLSv1.2');
});

t.test('refusals', async (t) => {
  t.same(problems(yaml({ secret: 'inline-secret-0123456789abcdef-0123456789' })), ['auth.keys[0].secret: must be a reference ${env:NAME} or ${file:/path}, never an inline secret']);
  t.same(problems(yaml({ secret: '"${env:NOPE}"' })), ['auth.keys[0].secret: environment variable NOPE is not set']);
  t.match(problems(yaml({ secret: '"${file:missing.secret}"' })), [/^auth\.keys\[0\]\.secret: file .*missing\.secret cannot be read \(ENOENT\)$/]);
  t.same(problems(yaml({ extra: 'colour: blue\n' })), ['colour: unknown key (known here: workers, server, admin, auth, revocation, cors, log, presign, app, providers, redis, limits, authorizer)']);
  t.same(problems(yaml({ extra: 'log: { level: info, colour: blue }\n' })), ['log.colour: unknown key (known here: level, format, audit, destination, auditDestination, auditChain)']);
  t.same(problems(yaml({ extra: 'log: { level: info, formt: text }\n' })), ['log.formt: unknown key (did you mean format?)']);
  t.same(problems(yaml({ secret: '"${env:SHORT}"' }), { SHORT: 'short' }), ['auth.keys[0].secret: HMAC secret must be at least 32 bytes']);
  t.same(
    problems(
      yaml({
        providers: `  - { name: files, kind: local, match: "local://files/", root: ${dir} }
  - { name: files, kind: local, match: "local://other/", root: ${dir} }
  - { name: third, kind: local, match: "LOCAL://files/", root: ${dir} }`,
      }),
    ),
    ['providers[1].name: duplicate of providers[0].name', 'providers[2].match: same prefix as providers[0]'],
  );
  t.match(problems(yaml({ providers: '  - { name: x, kind: ftp, match: "ftp://x/" }' })), [/^providers\[0\]\.kind: /]);
  t.match(problems(yaml({ providers: '  - { name: "bad name", kind: local, match: "local://x/", root: . }' })), [/^providers\[0\]\.name: /]);
  t.match(problems(yaml({ providers: '  - { name: x, kind: local, match: "local://x/../y/", root: . }' })), [/^providers\[0\]\.match: not a valid URI prefix/]);
  t.match(problems(yaml({ providers: `  - { name: x, kind: local, match: "local://x/", root: ${join(dir, 'nope')} }` })), [/^providers\[0\]\.root: /]);
  t.match(problems(yaml().replace(/ {2}tls: .*\n/, '')), [/^server\.tls: server\.tls is required/]);
  t.match(problems(yaml({ extra: 'server2: 1\n' })), ['server2: unknown key']);
  t.same(problems(yaml().replace('providers:\n', 'providers: []\n').replace(/ {2}- \{ name: files.*\n/, '')), ['providers: at least one provider is required']);
});

t.test('bad YAML', async (t) => {
  t.match(problems('server: [unclosed\n'), [/^line \d+, column \d+: YAML: .*[^:]$/]);
  t.match(problems('a: 1\na: 2\n'), [/^line 2, column 1: YAML: .*unique$/i], 'duplicate keys are an error, not last-wins; at their line, no trailing colon');
  t.match(problems('- just\n- a list\n'), [/expected object|Invalid input/i]);
});

t.test('every problem is listed at once', async (t) => {
  const c = testCerts();
  const text = `server:
  listen: { host: 127.0.0.1, port: 99999 }
  tls: { cert: ${join(dir, 'missing.pem')}, key: ${c.serverKey} }
  colour: blue
auth:
  issuer: i
  audience: a
  keys:
    - { kid: k1, algorithms: [HS256], secret: inline-secret }
    - { kid: k2, algorithms: [RS256], publicKey: ${join(dir, 'missing.pub.pem')} }
providers:
  - { name: files, kind: local, match: "local://files/", root: ${dir} }
  - name: corp
    kind: http
    match: https://data.corp/
    baseUrl: https://files.internal/
    auth: { type: basic, username: u, password: "\${env:DATA_PASS}" }
    timeouts: { connect: soon }
`;
  const list = problems(text);
  for (const expected of [
    'providers[1].auth.password: environment variable DATA_PASS is not set',
    'server.colour: unknown key (known here: listen, tls, http2, insecurePlainHttp, redirectHttp, publicUrl, hsts, timeouts, drainTimeout, maxHeaderSize, maxUriLength)',
    'auth.keys[0].secret: must be a reference ${env:NAME} or ${file:/path}, never an inline secret',
  ]) {
    t.ok(list.includes(expected), expected);
  }
  t.ok(list.some((p) => p.startsWith('server.listen.port: ')), 'port out of range');
  t.ok(list.some((p) => p.startsWith('providers[1].timeouts.connect: ')), 'bad duration');
  t.ok(list.length >= 5, `${list.length} problems in one pass`);
  t.notOk(list.join('\n').includes('inline-secret'), 'an inline secret is never echoed');
});

t.test('file checks run in the same pass as the schema', async (t) => {
  const text = yaml().replace(/cert: [^,]+,/, `cert: ${join(dir, 'admin.token')},`);
  t.match(problems(text), [/^server\.tls\.cert: .* is not a PEM certificate/]);
  t.match(problems(text.replace('providers:', 'colour: blue\nproviders:')), [/^colour: unknown key/, /^server\.tls\.cert: .* is not a PEM certificate/], 'a schema problem does not hide a file problem');
  const rs = yaml({ secret: '"${file:hs.secret}"' }).replace('providers:', `  # nothing\nproviders:`);
  t.same(problems(rs), []);
});

t.test('loadConfigFile: relative paths from the file folder; unreadable file', async (t) => {
  const file = join(dir, 'keyhole.yaml');
  writeFileSync(file, yaml().replace(`root: ${dir}`, 'root: .'));
  const cfg = loadConfigFile(file);
  t.equal(cfg.providers[0]!.kind === 'local' && cfg.providers[0]!.root, dir);
  let err: unknown;
  try {
    loadConfigFile(join(dir, 'nope.yaml'));
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof ConfigError);
  t.match((err as ConfigError).problems, [{ path: '', message: /cannot read .*nope\.yaml: ENOENT/ }]);
});

// Found by a red-team run (and issue 16's `baseUrl: 127.0.0.1:18081`): a refinement after a
// failed URL check called `new URL` and threw out of the whole parse ("Invalid URL", no path,
// every other problem hidden).
t.test('a malformed URL is one problem with its path, beside the others', async (t) => {
  for (const [field, provider] of [
    ['providers[0].baseUrl', '{ name: h, kind: http, match: "https://data.corp/", baseUrl: "127.0.0.1:18081" }'],
    ['providers[0].endpoint', '{ name: s, kind: s3, match: "s3://b/", endpoint: "nope", buckets: [{ name: "B!" }] }'],
    ['providers[0].endpoint', '{ name: a, kind: azure, match: "azure-blob://c/", account: acct, endpoint: "nope", containers: [{ name: c }] }'],
    ['providers[0].endpoint', '{ name: g, kind: gcs, match: "gs://b/", endpoint: "nope", buckets: [{ name: b }] }'],
  ] as const) {
    const list = problems(yaml({ providers: `  - ${provider}\n`, extra: 'colour: blue\n' }));
    t.ok(list.some((p) => p.startsWith(`${field}: `)), `${provider.slice(0, 40)}…: ${field} named`);
    t.ok(list.some((p) => p.startsWith('colour: ')), 'and the other problems still listed');
    t.notOk(list.some((p) => /Invalid URL/.test(p) && !p.includes(':')), 'no bare "Invalid URL"');
  }
  const app = problems(yaml({ extra: 'app:\n  upstream: "label-studio:8080/x"\ncors:\n  origins: ["nope"]\n' }));
  t.ok(app.some((p) => p.startsWith('app.upstream: ')), 'app.upstream named');
});
