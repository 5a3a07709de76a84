// Legal but risky configurations are named, with their path, and change nothing else.
import t from 'tap';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { configWarnings, formatWarning } from '../../src/config/warnings.js';
import { baseYaml } from '../helpers/keyhole.js';

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
