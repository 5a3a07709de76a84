// The one reload pipeline (src/process/reload.ts) that a single process, a cluster worker
// and a cluster primary share: what it refuses before anything is built, what it hands the
// caller to put in force, how the caller's outcome is answered and logged, and that
// reloads run one at a time.
import t, { type Test } from 'tap';
import { Writable } from 'node:stream';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { createLogger } from '../../src/observe/logger.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { oneAtATime, readConfig, reloadConfig, type BuiltReload, type ReloadSteps } from '../../src/process/reload.ts';
import { testCerts } from '../helpers/certs.ts';
import { ADMIN_TOKEN, baseYaml, TEST_SECRET, type LogLine } from '../helpers/keyhole.ts';

const env = { KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN };
const providers = (names: string[]) => `providers:\n${names.map((n) => `  - name: ${n}\n    kind: local\n    match: local://${n}/\n    root: ${process.cwd()}\n`).join('')}`;
const cfg = (yaml: string): Config => parseConfig(yaml, { env });
const base = (names = ['files'], extra = '') => baseYaml(extra + providers(names));

async function setup(t: Test): Promise<{ logs: LogLine[]; current: Runtime; steps: (over: Partial<ReloadSteps>) => ReloadSteps; built: BuiltReload[] }> {
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      cb();
    },
  });
  const logger = createLogger({ level: 'debug', destination: sink });
  const current = await createRuntime(cfg(base()), { logger });
  const built: BuiltReload[] = [];
  t.teardown(async () => {
    for (const b of built) await b.runtime.close({ keepRevocation: b.keepRevocation });
    await current.close();
  });
  const steps = (over: Partial<ReloadSteps>): ReloadSteps => ({
    logger,
    current,
    read: () => cfg(base(['files', 'extra'])),
    cluster: false,
    swap: (b) => {
      built.push(b);
      return { logged: { providers: b.next.providers.map((p) => p.name) } };
    },
    ...over,
  });
  return { logs, current, steps, built };
}

const flushed = () => new Promise((r) => setImmediate(r));

t.test('accepted: the new runtime keeps the revocation store and metrics; warnings answered and logged', async (t) => {
  const { logs, current, steps, built } = await setup(t);
  const moved = () => cfg(base(['files', 'extra']).replace('listen: { host: 127.0.0.1, port: 0 }', 'listen: { host: 127.0.0.1, port: 8444 }'));
  const result = await reloadConfig(steps({ read: moved }));
  t.same(result, { ok: true, warnings: ['server.listen changed: takes effect after a restart'] });
  const h2off = () => cfg(base(['files', 'extra']).replace('listen: { host: 127.0.0.1, port: 0 }', 'listen: { host: 127.0.0.1, port: 0 }\n  http2: false'));
  t.same(await reloadConfig(steps({ read: h2off })), { ok: true, warnings: ['server.http2 changed: takes effect after a restart'] }, 'the listener keeps the ALPN list it was built with');
  t.equal(built.length, 2, 'swapped once per reload');
  const [b] = built;
  t.same(b!.next.providers.map((p) => p.name), ['files', 'extra'], 'the config read is the one built');
  t.equal(b!.keepRevocation, true);
  t.equal(b!.runtime.revocation, current.revocation, 'a reload never brings a revoked token back');
  t.equal(b!.runtime.metrics, current.metrics, 'counters carry on');
  t.ok(b!.material, 'the certificate pair is read and handed over');
  await flushed();
  const msgs = logs.map((l) => l.msg);
  t.ok(msgs.indexOf('server.listen changed: takes effect after a restart') < msgs.indexOf('configuration reloaded'), 'warnings before the outcome');
  t.same(logs.find((l) => l.msg === 'configuration reloaded')?.providers, ['files', 'extra'], 'the caller’s fields on the line');
});

t.test('refused before anything is built: the problems answered and logged, no swap', async (t) => {
  const { logs, steps, built } = await setup(t);
  const unreadable = await reloadConfig(steps({ read: () => { throw new ConfigError([{ path: 'providers.0.root', message: 'missing' }]); } }));
  t.same(unreadable, { ok: false, problems: ['providers.0.root: missing'] });

  const plain = () => cfg(base().replace(/ {2}tls: \{[^}]+\}\n/, '  insecurePlainHttp: true\n'));
  t.match(await reloadConfig(steps({ read: plain })), { ok: false, problems: [/TLS cannot be switched on or off/] });

  const badPair = () => cfg(baseYaml(providers(['files']), { tls: { cert: testCerts().serverCert, key: testCerts().otherClientKey } }));
  // The config's check (as check-config) sees they do not belong together, naming both files.
  t.same(await reloadConfig(steps({ read: badPair })), { ok: false, problems: [`server.tls: the key (${testCerts().otherClientKey}) does not belong to the certificate (${testCerts().serverCert})`] });

  const redis = () => cfg(base(['files'], 'redis:\n  url: rediss://127.0.0.1:6390\n'));
  const fixed = await reloadConfig(steps({ read: redis, cluster: true, revocationFixed: true }));
  t.same(fixed, { ok: false, problems: ['revocation: the store cannot change by a reload while workers run; restart Keyhole'] });

  t.equal(built.length, 0, 'nothing was swapped');
  await flushed();
  t.equal(logs.filter((l) => l.msg === 'reload refused: the running configuration stays').length, 4);
});

t.test('a cluster primary: workers may change; what did not take the config makes the reload incomplete', async (t) => {
  const { logs, steps } = await setup(t);
  const more = () => cfg(base(['files'], 'workers: 3\n'));
  t.same(await reloadConfig(steps({ read: more, cluster: true })), { ok: true }, 'no restart warning for workers');
  const incomplete = await reloadConfig(
    steps({ read: more, cluster: true, swap: () => ({ problems: ['worker 2: no answer to the reload'], logged: {} }) }),
  );
  t.same(incomplete, { ok: false, problems: ['worker 2: no answer to the reload'] });
  const cert = { fingerprint: 'ab', serial: '01' };
  t.same(await reloadConfig(steps({ read: more, cluster: true, swap: () => ({ certificate: cert, logged: {} }) })), { ok: true, certificate: cert });
  await flushed();
  t.equal(logs.filter((l) => l.msg === 'reload incomplete: some workers kept their configuration').length, 1);
});

t.test('one reload at a time, and a failed one does not stop the next', async (t) => {
  const order: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let n = 0;
  const reload = oneAtATime(async () => {
    const i = ++n;
    order.push(`start ${i}`);
    if (i === 1) await gate;
    order.push(`end ${i}`);
    if (i === 2) throw new Error('boom');
    return { ok: true };
  });
  const first = reload();
  const second = reload();
  const third = reload();
  await flushed();
  t.same(order, ['start 1'], 'the second waits for the first');
  release();
  t.same(await first, { ok: true });
  await t.rejects(second, /boom/);
  t.same(await third, { ok: true });
  t.same(order, ['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
});

t.test('readConfig: the file and its text; an unreadable file is a config problem', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-reload-'));
  const file = join(dir, 'keyhole.yaml');
  // The file names its secrets by ${env:…}, as a real one does: a reload reads the process environment.
  for (const [name, value] of Object.entries(env)) {
    const was = process.env[name];
    process.env[name] = value;
    t.teardown(() => (was === undefined ? delete process.env[name] : (process.env[name] = was)));
  }
  const yaml = base();
  writeFileSync(file, yaml);
  const read = readConfig(file);
  t.equal(read.yaml, yaml);
  t.same(read.config.providers.map((p) => p.name), ['files']);
  const missing = (() => {
    try {
      readConfig(join(dir, 'missing.yaml'));
    } catch (err) {
      return err;
    }
  })();
  t.ok(missing instanceof ConfigError, 'a config problem, listed like any other');
  t.match((missing as ConfigError).problems, [{ path: '', message: /^cannot read .*missing\.yaml: ENOENT$/ }]);
});
