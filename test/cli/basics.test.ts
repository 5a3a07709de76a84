// What a newcomer types first: --version, --help on every command, a mistyped option, flags
// that cannot apply, a token the server would refuse. One exit-code rule for every command
// (0 done, 2 usage or configuration, 1 a failure once running), and a token the CLI mints at
// its limit is one the server accepts.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tmpDir } from '../helpers/cli.ts';
import { baseYaml, dataUrl, startKeyhole, TEST_SECRET } from '../helpers/keyhole.ts';

t.setTimeout(600_000);

const COMMANDS = ['serve', 'check-config', 'certs', 'token', 'presign', 'tasks', 'audit', 'version'];

t.test('--version, -V and version: the package version, the Node that runs it and the commit', async (t) => {
  const pkg = JSON.parse(execFileSync('git', ['show', 'HEAD:package.json'], { encoding: 'utf8' })) as { version: string };
  const head = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
  for (const args of [['--version'], ['-V'], ['version']]) {
    const r = runCli(args);
    t.equal(r.code, 0, `${args[0]}: exit 0`);
    t.equal(r.stdout, `keyhole ${pkg.version} (node ${process.version}, commit ${head})\n`, args.join(' '));
  }
  const env = runCli(['--version'], { env: { KEYHOLE_COMMIT: 'ABCDEF1234567' } });
  t.match(env.stdout, /commit abcdef1234567\)/, 'KEYHOLE_COMMIT (the image build) names the commit where there is no .git');
});

t.test('--help and -h on every command: its usage on stdout, exit 0; the main help lists every command and the exit codes', async (t) => {
  const main = runCli(['--help']);
  t.equal(main.code, 0);
  for (const c of COMMANDS) t.match(main.stdout, new RegExp(`^  ${c}\\b`, 'm'), `main help lists ${c}`);
  t.match(main.stdout, /Exit status, every command: 0 done .*; 2 it could not start/s);
  for (const c of COMMANDS) {
    for (const flag of ['--help', '-h']) {
      const r = runCli([c, flag]);
      t.equal(r.code, 0, `${c} ${flag}: exit 0 (${r.stderr})`);
      t.match(r.stdout, new RegExp(`^usage: keyhole ${c}\\b`), `${c} ${flag}: its own usage`);
      t.equal(r.stderr, '', `${c} ${flag}: nothing on stderr`);
    }
  }
  t.match(runCli(['serve', '--help']).stdout, /--port N .*\n.*\n.*With --config the ports are FILE's/, 'serve --help says what --port applies to');
});

t.test('usage errors: exit 2, one line naming the command and where its help is', async (t) => {
  for (const c of ['serve', 'check-config', 'certs', 'token', 'presign', 'version']) {
    const r = runCli([c, '--no-such-option']);
    t.equal(r.code, 2, `${c}: exit 2`);
    t.match(r.stderr, new RegExp(`^keyhole: ${c}: Unknown option '--no-such-option'.*\\(keyhole ${c} --help\\)\\n$`), `${c}: names the command and its help`);
  }
  const unknown = runCli(['serv']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /^keyhole: unknown command serv\n/);
  t.equal(runCli(['check-config']).code, 2, 'check-config without a FILE');
  t.match(runCli(['token', '--sub', 'a', '--scope', 'local://x/', '--ttl', '1h']).stderr, /--ttl must be a positive whole number of seconds, not 1h/);
  t.match(runCli(['serve', '--port', 'eighty']).stderr, /--port must be a port number 0-65535, not eighty/);
});

t.test('serve --config FILE --port N: refused with what to do, never silently ignored', async (t) => {
  for (const flags of [['--port', '9443'], ['--admin-port', '9092'], ['--port', '9443', '--admin-port', '9092']]) {
    const r = runCli(['serve', '--config', '/etc/keyhole/keyhole.yaml', ...flags]);
    t.equal(r.code, 2, `${flags.join(' ')}: exit 2`);
    t.match(r.stderr, /sets? the embedded default's ports; with --config \/etc\/keyhole\/keyhole\.yaml set server\.listen\.port and admin\.listen\.port in that file/);
    t.notMatch(r.stdout, /listening/);
  }
});

t.test("token --ttl over auth.maxTokenLifetime: refused, naming the limit; at the limit the server accepts it", async (t) => {
  const dir = tmpDir('ttl');
  mkdirSync(join(dir, 'files'));
  writeFileSync(join(dir, 'files', 'a.txt'), 'hello');
  const yaml = baseYaml(`providers:\n  - { name: files, kind: local, match: "local://files/", root: ${join(dir, 'files')} }\n`, { auth: 'maxTokenLifetime: 1h' });
  const file = join(dir, 'keyhole.yaml');
  writeFileSync(file, yaml);
  const env = { KEYHOLE_TEST_SECRET: TEST_SECRET };
  const over = runCli(['token', '--config', file, '--sub', 'a', '--scope', 'local://files/', '--ttl', '3601'], { env });
  t.equal(over.code, 2);
  t.equal(over.stdout, '', 'no token printed');
  t.match(over.stderr, new RegExp(`--ttl 3601 is longer than auth\\.maxTokenLifetime \\(3600 s in ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\): Keyhole would refuse the token \\(token_lifetime\\); use --ttl 3600 or less`));
  const embedded = runCli(['token', '--sub', 'a', '--scope', 'local://samples/', '--ttl', '100000', '--cert-dir', join(dir, 'certs')]);
  t.equal(embedded.code, 2);
  t.match(embedded.stderr, /--ttl 100000 is longer than auth\.maxTokenLifetime \(86400 s\)/, 'the embedded default: its 24 h limit');

  const at = runCli(['token', '--config', file, '--sub', 'a', '--scope', 'local://files/', '--ttl', '3600'], { env });
  t.equal(at.code, 0, at.stderr);
  const k = await startKeyhole(yaml);
  t.teardown(() => k.close());
  t.equal((await k.get(dataUrl('local://files/a.txt'), { authorization: `Bearer ${at.stdout.trim()}` })).status, 200, 'a token at the limit is served');
  const longer = await k.token({ scope: ['local://files/'], ttlSeconds: 3700 });
  const refused = await k.get(dataUrl('local://files/a.txt'), { authorization: `Bearer ${longer}` });
  t.equal(refused.status, 401);
  t.match(JSON.parse(refused.body.toString()) as object, { error: 'token_lifetime', message: /auth\.maxTokenLifetime/ }, 'the server names the limit too');
});

t.test('./keyhole runs src/ on Node 24’s own type stripping, no tsx and no build, as npm start does', async (t) => {
  // Not instrumented: c8 cannot merge a plain process's coverage with the tsx processes'
  // (.taprc). tap re-adds its NODE_OPTIONS to every child, so `env -u` takes them off last.
  const keyhole = join(import.meta.dirname, '..', '..', 'keyhole');
  const plain = (...args: string[]) => spawnSync('env', ['-u', 'NODE_OPTIONS', '-u', 'NODE_V8_COVERAGE', keyhole, ...args], { encoding: 'utf8' });
  const version = plain('--version');
  t.equal(version.status, 0, version.stderr);
  t.match(version.stdout, /^keyhole \S+ \(node v24\.\d+\.\d+, commit [0-9a-f]{40}\)\n$/, 'on the Node 24 npm brought');
  const dir = tmpDir('plain');
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, 'server:\n  listen: { port: 70000 }\n');
  const check = plain('check-config', file);
  t.equal(check.status, 2);
  t.match(check.stdout, /server\.listen\.port: Too big/, 'the whole loader runs from source');
});
