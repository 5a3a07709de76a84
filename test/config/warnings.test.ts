// Legal but risky configurations are named, with their path, and change nothing else.
import t from 'tap';
import { mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.ts';
import { configWarnings, formatWarning } from '../../src/config/warnings.ts';
import { baseYaml } from '../helpers/keyhole.ts';

const env = { ...process.env, KEYHOLE_TEST_SECRET: 'warnings-test-secret-0123456789abcdef-0123', KEYHOLE_TEST_ADMIN: 'admin-0123456789' };
const root = mkdtempSync(join(tmpdir(), 'keyhole-warnings-'));
mkdirSync(join(root, 'inner'));
mkdirSync(join(root, 'innerX'));

const warningsOf = (yaml: string) => configWarnings(parseConfig(yaml, { env })).map(formatWarning);

t.test('server.publicUrl unset is named, set is not', async (t) => {
  const providers = `providers:\n  - { name: a, kind: local, match: "local://a/", root: ${root} }\n`;
  t.match(warningsOf(baseYaml(providers)), [/^warning: server\.publicUrl: not set: the HTTP redirect and POST \/v1\/session's Origin check/]);
  const withUrl = baseYaml(providers).replace('server:\n', 'server:\n  publicUrl: https://data.example.org\n');
  t.same(warningsOf(withUrl), []);
});

t.test('a local root inside another is named; siblings and a shared prefix of names are not', async (t) => {
  const yaml = baseYaml(`providers:
  - { name: outer, kind: local, match: "local://outer/", root: ${root} }
  - { name: inner, kind: local, match: "local://inner/", root: ${join(root, 'inner')} }
  - { name: sibling, kind: local, match: "local://sibling/", root: ${join(root, 'innerX')} }
`).replace('server:\n', 'server:\n  publicUrl: https://data.example.org\n');
  const w = warningsOf(yaml);
  t.equal(w.length, 2, w.join('\n'));
  t.match(w[0], /^warning: providers\[1\]\.root: inside providers\[0\] \(outer\)'s root/);
  t.match(w[1], /^warning: providers\[2\]\.root: inside providers\[0\] \(outer\)'s root/);
});

const publicUrl = (yaml: string) => yaml.replace('server:\n', 'server:\n  publicUrl: https://data.example.org\n');

t.test('roots that share files through a symlink, or the same tree twice, are named', async (t) => {
  const outer = mkdtempSync(join(tmpdir(), 'keyhole-warnings-outer-'));
  mkdirSync(join(outer, 'inner'));
  const elsewhere = mkdtempSync(join(tmpdir(), 'keyhole-warnings-link-'));
  symlinkSync(join(outer, 'inner'), join(elsewhere, 'looks-apart'));
  const yaml = publicUrl(
    baseYaml(`providers:
  - { name: outer, kind: local, match: "local://outer/", root: ${outer} }
  - { name: linked, kind: local, match: "local://linked/", root: ${join(elsewhere, 'looks-apart')} }
  - { name: twin, kind: local, match: "local://twin/", root: ${outer}/ }
`),
  );
  const w = warningsOf(yaml);
  t.equal(w.length, 2, w.join('\n'));
  t.match(w[0], /^warning: providers\[1\]\.root: inside providers\[0\] \(outer\)'s root/, 'a symlink does not hide the nesting');
  t.match(w[1], /^warning: providers\[2\]\.root: the same tree as providers\[0\] \(outer\)'s root: each file has two URIs/);
});

t.test('other legal but risky settings are named, each with its key', async (t) => {
  const providers = `providers:\n  - { name: a, kind: local, match: "local://a/", root: ${root} }\n`;
  const risky = baseYaml(`cors: { origins: ["http://labeling.example.org", "http://localhost:3000", "https://ok.example.org"] }
${providers}app:
  upstream: http://127.0.0.1:1
  trustedProxies: [0.0.0.0/0, 10.0.0.0/8, "2001:db8::/16", 192.0.2.7]
  tls: { insecureSkipVerify: true }
  cookies: { httpOnly: false }
  defaultMethods: [GET, TRACE]
`)
    .replace('server:\n', 'server:\n  publicUrl: http://data.example.org\n')
    .replace('  keys:', '  cookie: { sameSite: None }\n  keys:');
  const w = warningsOf(risky);
  t.same(
    w.map((l) => l.split(': ')[1]),
    ['server.publicUrl', 'cors.origins', 'auth.cookie.sameSite', 'app.trustedProxies[0]', 'app.trustedProxies[2]', 'app.tls.insecureSkipVerify', 'app.cookies.httpOnly', 'app.methods'],
    w.join('\n'),
  );
  t.match(w[0], /is http: the redirect sends browsers to plain HTTP/);
  t.match(w[1], /http:\/\/labeling\.example\.org is plain HTTP/, 'a loopback http origin (local development) is not named');
  t.match(w[3], /0\.0\.0\.0\/0 covers every address/);
  t.match(w[7], /TRACE listed, but never forwarded/);
  const plain = baseYaml(providers).replace(/ {2}tls: \{[^\n]*\n/, '  insecurePlainHttp: true\n');
  t.match(warningsOf(publicUrl(plain)), [/^warning: server\.insecurePlainHttp: data routes are served WITHOUT TLS/]);
});
