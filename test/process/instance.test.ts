// What a reload may change in place, what needs a restart, and when the revocation store
// must survive a reload.
import t from 'tap';
import { parseConfig } from '../../src/config/load.ts';
import { fingerprintSection, restartOnlyChanges, revocationSettings } from '../../src/process/reload.ts';
import { InFlight } from '../../src/server/in-flight.ts';
import { EventEmitter } from 'node:events';
import { baseYaml, TEST_SECRET, ADMIN_TOKEN } from '../helpers/keyhole.ts';

const env = { KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN, OTHER: 'x' };
const providers = `providers:\n  - name: files\n    kind: local\n    match: local://files/\n    root: ${process.cwd()}\n`;
const cfg = (extra = '', envOver: Record<string, string> = {}) => parseConfig(baseYaml(extra + providers), { env: { ...env, ...envOver } });

t.test('restart-only changes: listeners warn, TLS on/off refuses, workers depends on the mode', async (t) => {
  const a = cfg();
  t.same(restartOnlyChanges(a, cfg()), { refuse: [], warn: [] }, 'same config: nothing');
  const moved = parseConfig(baseYaml(providers).replace('listen: { host: 127.0.0.1, port: 0 }', 'listen: { host: 127.0.0.1, port: 8444 }'), { env });
  t.match(restartOnlyChanges(a, moved).warn, [/^server\.listen changed/]);
  const plain = parseConfig(baseYaml(providers).replace(/ {2}tls: \{[^}]+\}\n/, '  insecurePlainHttp: true\n'), { env });
  t.match(restartOnlyChanges(a, plain).refuse, [/TLS cannot be switched on or off/]);
  const workers = cfg('workers: 3\n');
  t.match(restartOnlyChanges(a, workers).warn, [/workers changed/], 'a single process cannot become a cluster');
  t.same(restartOnlyChanges(a, workers, { cluster: true }).warn, [], 'a cluster primary resizes instead');
});

t.test('secrets are compared by value, not by where they come from', async (t) => {
  const one = cfg();
  const same = cfg();
  t.equal(revocationSettings(one), revocationSettings(same));
  t.equal(fingerprintSection(one.auth), fingerprintSection(same.auth));
  const rotated = cfg('', { KEYHOLE_TEST_SECRET: 'another-secret-0123456789abcdef-0123456789' });
  t.not(fingerprintSection(rotated.auth), fingerprintSection(one.auth), 'a rotated secret is a change');
  t.notMatch(fingerprintSection(rotated.auth), /another-secret/, 'and the fingerprint does not hold the secret');
});

t.test('InFlight: idle per key, resolves when the last one closes', async (t) => {
  const f = new InFlight<object>();
  const a = {};
  const b = {};
  await f.idle(a);
  t.pass('nothing in flight: idle at once');
  const r1 = new EventEmitter();
  const r2 = new EventEmitter();
  const r3 = new EventEmitter();
  f.enter(a, r1);
  f.enter(a, r2);
  f.enter(b, r3);
  t.equal(f.count(), 3);
  t.equal(f.count(a), 2);
  let aIdle = false;
  let allIdle = false;
  void f.idle(a).then(() => (aIdle = true));
  void f.allIdle().then(() => (allIdle = true));
  r1.emit('close');
  await new Promise((r) => setImmediate(r));
  t.notOk(aIdle, 'one of two still in flight');
  r2.emit('close');
  await new Promise((r) => setImmediate(r));
  t.ok(aIdle, 'a is idle once both closed');
  t.notOk(allIdle, 'b still in flight');
  r3.emit('close');
  await new Promise((r) => setImmediate(r));
  t.ok(allIdle);
  t.equal(f.count(), 0);
});
