// The audit chain as Keyhole writes it (src/observe/audit-chain.ts), read back from real files:
// every line records the hash of its stream's previous line as written, checkpoints join the
// chain every N events, after a quiet interval and at exit, signed with the configured
// Ed25519 key; a reload continues the stream; each destination and process is a stream of its
// own; the Redis audit stream gets the checkpoints; a rotated file is followed.
import t from 'tap';
import { spawn } from 'node:child_process';
import { generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { AuditLog, auditEvent, type AuditSink } from '../../src/observe/audit.ts';
import { auditTrailOf, checkpointPayload, genesis, keyId, lineHash, type AuditCheckpoint } from '../../src/observe/audit-chain.ts';
import { AuditStream } from '../../src/observe/audit-stream.ts';
import { auditLogOptions, logDestination, openLogDestinations, type LogSettings } from '../../src/observe/destinations.ts';
import { LineWriter } from '../../src/observe/line-writer.ts';
import { createLogger } from '../../src/observe/logger.ts';
import { Metrics } from '../../src/observe/metrics.ts';
import { ConfigError, parseConfig } from '../../src/config/load.ts';
import { Secret } from '../../src/config/secret.ts';
import { auditStreamSchema, redisConnectionSchema } from '../../src/redis/schema.ts';
import { verifyTrail } from '../../src/cli/audit-verify.ts';
import { baseYaml, TEST_SECRET, ADMIN_TOKEN } from '../helpers/keyhole.ts';
import { startRedis, testClient } from '../helpers/redis.ts';
import { testCerts } from '../helpers/certs.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'keyhole-audit-chain-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const PEM = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
writeFileSync(join(dir, 'key.pem'), PEM);

let files = 0;
const tempPath = (name = 'audit') => join(dir, `${name}-${files++}.log`);

type Line = Record<string, unknown> & { kind: string; stream: string; seq: number; prev: string };

/** The file's lines as written (bytes without the newline) and parsed. */
function readTrail(path: string): { raw: string[]; lines: Line[] } {
  const text = readFileSync(path, 'utf8');
  if (text !== '' && !text.endsWith('\n')) throw new Error(`${path} ends inside a line`);
  const raw = text.split('\n').slice(0, -1);
  return { raw, lines: raw.map((l) => JSON.parse(l) as Line) };
}

const event = (i: number) => auditEvent({ id: `req-${i}`, kind: 'data', reason: 'ok', sub: 'alice', provider: 'files', uri: `local://files/${i}.txt`, bytes: i, client: '127.0.0.1' });

function signatureHolds(cp: Pick<AuditCheckpoint, 'stream' | 'seq' | 'prev' | 'time' | 'final'> & { sig?: unknown }, key: KeyObject = publicKey): boolean {
  return typeof cp.sig === 'string' && verify(null, checkpointPayload(cp), key, Buffer.from(cp.sig, 'base64url'));
}

/** A logger and audit log writing one file through a LineWriter, as Keyhole does. */
function fileAudit(path: string, chain: { signingKey?: string; every?: number; intervalMs?: number }, bindings: Record<string, unknown> = {}) {
  const writer = new LineWriter({ path });
  const logger = createLogger({ level: 'info', destination: writer }).child(bindings);
  return { writer, logger, audit: new AuditLog(logger, undefined, { chain }), close: () => auditTrailOf(writer)!.close() };
}

t.test('each line records the hash of the one before it, as written; checkpoints every N events, signed, and a final one', async (t) => {
  const path = tempPath();
  const f = fileAudit(path, { signingKey: PEM, every: 4, intervalMs: 0 }, { worker: 7 });
  for (let i = 1; i <= 10; i++) f.audit.write(event(i));
  f.close();
  const { raw, lines } = readTrail(path);
  t.same(lines.map((l) => l.kind), ['audit', 'audit', 'audit', 'audit', 'audit-checkpoint', 'audit', 'audit', 'audit', 'audit', 'audit-checkpoint', 'audit', 'audit', 'audit-checkpoint'], 'a checkpoint after every 4 events, and one at the end');
  const stream = lines[0]!.stream;
  t.match(stream, new RegExp(`^${process.pid}-[\\w-]{8}$`), 'the stream names its process');
  t.same(lines.map((l) => l.seq), [...Array(13).keys()].map((i) => i + 1), 'seq counts every line of the stream');
  t.ok(lines.every((l) => l.stream === stream && l.worker === 7 && l.service === 'keyhole'), 'one stream; the logger fields on every line');
  t.equal(lines[0]!.prev, genesis(stream), "the first line starts from the stream's genesis");
  for (let i = 1; i < raw.length; i++) t.equal(lines[i]!.prev, lineHash(Buffer.from(raw[i - 1]!)), `line ${i + 1} records the hash of line ${i} as written`);
  t.same(Object.keys(lines[0]!), ['level', 'time', 'service', 'worker', 'kind', 'stream', 'seq', 'prev', 'audit', 'msg'], "an audit line keeps pino's shape, the chain beside the kind");
  t.match(lines[0]!.audit, { id: 'req-1', uri: 'local://files/1.txt', bytes: 1 });
  const checkpoints = lines.filter((l) => l.kind === 'audit-checkpoint') as unknown as AuditCheckpoint[];
  t.same(checkpoints.map((c) => c.final), [false, false, true]);
  for (const cp of checkpoints) {
    t.ok(signatureHolds(cp), `checkpoint seq ${cp.seq}: the signature holds with the public key`);
    t.equal(cp.kid, keyId(publicKey), 'named by the key id');
    t.notOk(signatureHolds({ ...cp, seq: cp.seq + 1 }), 'and covers the seq');
    t.notOk(signatureHolds({ ...cp, prev: lines[0]!.prev }), 'and the hash of the line before');
    t.notOk(signatureHolds({ ...cp, final: !cp.final }), 'and whether it is the last');
  }
  t.same((await verifyTrail([path], { keys: [publicKey] })).findings, [], 'the verifier agrees');
  f.audit.write(event(11));
  f.writer.flushSync();
  t.equal(readTrail(path).lines.length, 13, 'nothing after the final checkpoint');
});

t.test('without a key: the same chain, checkpoints unsigned', async (t) => {
  const path = tempPath();
  const f = fileAudit(path, { every: 2, intervalMs: 0 });
  for (let i = 1; i <= 3; i++) f.audit.write(event(i));
  f.close();
  const { lines } = readTrail(path);
  t.same(lines.map((l) => l.kind), ['audit', 'audit', 'audit-checkpoint', 'audit', 'audit-checkpoint']);
  t.notOk(lines.some((l) => 'sig' in l || 'kid' in l), 'no signature fields');
  const report = await verifyTrail([path]);
  t.equal(report.intact, true);
  t.match(report.notes.join('\n'), /signatures not checked/);
  t.same((await verifyTrail([path], { keys: [publicKey] })).findings.map((f) => f.kind), ['truncated', 'unsigned', 'unsigned'], 'with --key: unsigned checkpoints cover nothing');
});

t.test('a reload continues the stream of its destination; another destination is another stream', async (t) => {
  const path = tempPath();
  const writer = new LineWriter({ path });
  const logger = createLogger({ level: 'info', destination: writer });
  const first = new AuditLog(logger, undefined, { chain: { every: 1000, intervalMs: 0 } });
  first.write(event(1));
  const reloaded = new AuditLog(logger, undefined, { chain: { signingKey: PEM, every: 1000, intervalMs: 0 } });
  reloaded.write(event(2));
  first.write(event(3)); // a request still in flight on the previous configuration
  const otherPath = tempPath();
  const other = fileAudit(otherPath, { every: 1000, intervalMs: 0 });
  other.audit.write(event(4));
  auditTrailOf(writer)!.close();
  other.close();
  const { lines } = readTrail(path);
  t.same(lines.map((l) => [l.kind, l.seq]), [['audit', 1], ['audit', 2], ['audit', 3], ['audit-checkpoint', 4]], 'one stream, in order, across the reload');
  t.equal(new Set(lines.map((l) => l.stream)).size, 1);
  t.ok(signatureHolds(lines[3] as never), "the reloaded config's key signs from then on");
  const otherStream = readTrail(otherPath).lines[0]!.stream;
  t.not(otherStream, lines[0]!.stream, 'another destination: another stream');
});

t.test('a checkpoint after a quiet interval, only when events came since the last', async (t) => {
  const path = tempPath();
  const f = fileAudit(path, { every: 1000, intervalMs: 40 });
  const kinds = () => {
    f.writer.flushSync();
    return readTrail(path).lines.map((l) => l.kind);
  };
  f.audit.write(event(1));
  f.audit.write(event(2));
  await sleep(200);
  t.same(kinds(), ['audit', 'audit', 'audit-checkpoint'], 'one checkpoint, then none while nothing happens');
  f.audit.write(event(3));
  await sleep(200);
  t.same(kinds(), ['audit', 'audit', 'audit-checkpoint', 'audit', 'audit-checkpoint']);
  f.close();
});

t.test('log and audit destinations: a file each, opened once per process, audit lines on their own', async (t) => {
  const logs = tempPath('ops');
  const auditPath = tempPath('audit');
  const settings: LogSettings = { destination: logs, auditDestination: auditPath, auditChain: { signingKey: new Secret(PEM, 'file:key.pem'), checkpointEvery: 1000, checkpointInterval: 0 } };
  const opened = openLogDestinations(settings);
  t.ok(opened.audit, 'a writer of its own for the audit file');
  t.equal(logDestination(logs), opened.logs, 'one writer per target: a reload gets the same');
  t.equal(openLogDestinations({ destination: logs }).audit, undefined, 'no audit destination: audit lines go with the logs');
  const logger = createLogger({ level: 'info', destination: opened.logs }).child({ worker: 1 });
  const opts = auditLogOptions(settings);
  t.equal(opts.destination, opened.audit);
  t.same(opts.chain, { signingKey: PEM, every: 1000, intervalMs: 0 });
  t.equal(auditLogOptions({ ...settings, audit: false }).destination, undefined, 'log.audit: false opens nothing');
  const audit = new AuditLog(logger, undefined, opts);
  logger.info({ requestId: 'r1' }, 'an operational line');
  audit.write(event(1));
  auditTrailOf(opened.audit!)!.close();
  opened.logs.flushSync();
  t.same(readTrail(logs).lines.map((l) => l.msg), ['an operational line'], 'the log file has no audit line');
  t.same(readTrail(auditPath).lines.map((l) => [l.kind, l.worker]), [['audit', 1], ['audit-checkpoint', 1]], 'the audit file has only the audit lines, with the logger fields');
  t.throws(() => logDestination(join(dir, 'no-such-folder', 'a.log')), /log destination .*no-such-folder.* cannot be opened \(ENOENT\)/, 'a file that cannot be opened fails at start-up');
});

t.test('the sink gets every checkpoint; a closing sink one covering what it got', async (t) => {
  const path = tempPath();
  const writer = new LineWriter({ path });
  const logger = createLogger({ level: 'info', destination: writer });
  const sink = () => {
    const got: AuditCheckpoint[] = [];
    const closing: (() => void)[] = [];
    const s: AuditSink & { got: AuditCheckpoint[]; closing: (() => void)[] } = { got, closing, push: () => undefined, checkpoint: (cp) => got.push(cp), onClosing: (fn) => closing.push(fn), close: async () => closing.forEach((fn) => fn()) };
    return s;
  };
  const a = sink();
  const first = new AuditLog(logger, a, { chain: { signingKey: PEM, every: 2, intervalMs: 0 } });
  first.write(event(1));
  first.write(event(2));
  t.equal(a.got.length, 1, 'a checkpoint after 2 events');
  const b = sink();
  const reloaded = new AuditLog(logger, b, { chain: { signingKey: PEM, every: 2, intervalMs: 0 } });
  first.write(event(3)); // in flight on the previous configuration
  await a.close(); // its last request ended: the previous runtime closes its sink
  t.equal(a.got.length, 2, 'the closing sink gets a checkpoint covering the event it got last');
  reloaded.write(event(4));
  reloaded.write(event(5));
  t.equal(b.got.length, 1, 'later checkpoints go to the newest sink');
  auditTrailOf(writer)!.close();
  const { lines } = readTrail(path);
  const onFile = lines.filter((l) => l.kind === 'audit-checkpoint');
  const sent = [...a.got, ...b.got];
  t.equal(b.got.length, 2, 'the final checkpoint too');
  t.same(
    sent.map((c) => ({ ...c })),
    onFile.map((l) => ({ stream: l.stream, seq: l.seq, prev: l.prev, time: l.time, final: l.final, kid: l.kid, sig: l.sig })),
    'what the sinks got is what the file says',
  );
  t.ok(sent.every((c) => signatureHolds(c)));
});

t.test('the Redis audit stream gets the checkpoints beside the events (real redis-server)', async (t) => {
  const c = testCerts();
  const r = await startRedis();
  t.teardown(() => r.stop());
  const conn = redisConnectionSchema.parse({ url: r.url, tls: { ca: c.caCert, cert: c.clientCert, key: c.clientKey }, commandTimeout: '10s' });
  const stream = await AuditStream.open(conn, auditStreamSchema.parse({ key: 'audit:chain' }), new Metrics(false), pino({ level: 'silent' }));
  await new Promise<void>((resolve) => (stream['client'].status === 'ready' ? resolve() : stream['client'].once('ready', () => resolve())));
  const path = tempPath();
  const writer = new LineWriter({ path });
  const audit = new AuditLog(createLogger({ level: 'info', destination: writer }), stream, { chain: { signingKey: PEM, every: 2, intervalMs: 0 } });
  for (let i = 1; i <= 3; i++) audit.write(event(i));
  await stream.close(); // a drain: the stream's own checkpoint covers event 3
  const reader = await testClient(r, { name: 'reader' });
  t.teardown(() => reader.disconnect());
  const entries = (await reader.xrange('audit:chain', '-', '+')).map(([, f]) => Object.fromEntries(Array.from({ length: f.length / 2 }, (_, i) => [f[2 * i]!, f[2 * i + 1]!])));
  t.same(entries.map((e) => e.kind), ['data', 'data', 'audit-checkpoint', 'data', 'audit-checkpoint'], 'in order with the events');
  writer.flushSync();
  const onFile = readTrail(path).lines.filter((l) => l.kind === 'audit-checkpoint');
  for (const [i, e] of entries.filter((x) => x.kind === 'audit-checkpoint').entries()) {
    const line = onFile[i]!;
    t.match(e, { stream: line.stream, seq: String(line.seq), prev: line.prev, time: line.time, final: 'false', kid: keyId(publicKey), sig: line.sig }, `checkpoint ${i + 1}: the file's, field for field`);
    t.ok(signatureHolds({ stream: e.stream!, seq: Number(e.seq), prev: e.prev!, time: e.time!, final: false, sig: e.sig }), 'its signature holds as stored in Redis');
  }
  auditTrailOf(writer)!.close();
});

/** Runs a script that writes audit events to `path` through AuditLog, as a Keyhole process does. */
function child(script: string, env: Record<string, string>): { done: Promise<{ code: number | null; signal: string | null; out: string }>; pid: number; ready: Promise<void> } {
  const prelude = `
    import { AuditLog, auditEvent } from ${JSON.stringify(join(ROOT, 'src/observe/audit.ts'))};
    import { LineWriter } from ${JSON.stringify(join(ROOT, 'src/observe/line-writer.ts'))};
    import { createLogger } from ${JSON.stringify(join(ROOT, 'src/observe/logger.ts'))};
    import { readFileSync } from 'node:fs';
    const writer = new LineWriter({ path: process.env.AUDIT_PATH });
    const logger = createLogger({ level: 'info', destination: writer }).child({ worker: Number(process.env.WORKER ?? 1) });
    const audit = new AuditLog(logger, undefined, { chain: { signingKey: readFileSync(process.env.KEY_PATH, 'utf8'), every: Number(process.env.EVERY ?? 1000), intervalMs: 0 } });
    const event = (i) => auditEvent({ id: 'w' + process.env.WORKER + '-' + i, kind: 'data', reason: 'ok', uri: 'local://files/' + i });
  `;
  const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', prelude + script], { cwd: ROOT, env: { ...process.env, KEY_PATH: join(dir, 'key.pem'), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let markReady: () => void;
  const ready = new Promise<void>((r) => (markReady = r));
  proc.stdout!.setEncoding('utf8').on('data', (c: string) => {
    out += c;
    if (out.includes('ready')) markReady();
  });
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const done = new Promise<{ code: number | null; signal: string | null; out: string }>((r) => proc.once('exit', (code, signal) => r({ code, signal, out })));
  return { done, pid: proc.pid!, ready };
}

t.test('the final checkpoint is written when the process ends: naturally, process.exit, an uncaught error; not on kill -9', async (t) => {
  const ends: Record<string, string> = {
    natural: '',
    'process.exit(3)': 'process.exit(3);',
    'an uncaught error': 'throw new Error("boom");',
  };
  for (const [how, end] of Object.entries(ends)) {
    const path = tempPath();
    const run = child(`for (let i = 0; i < 5; i++) audit.write(event(i));\n${end}`, { AUDIT_PATH: path, EVERY: '3' });
    const { out } = await run.done;
    const { lines } = readTrail(path);
    t.same(lines.map((l) => l.kind).slice(-2), ['audit', 'audit-checkpoint'], `${how}: ${out.trim().split('\n')[0] ?? ''}`);
    t.equal(lines.at(-1)!.final, true, `${how}: the last line is the final checkpoint`);
    t.equal((await verifyTrail([path], { keys: [publicKey] })).intact, true, `${how}: the trail verifies intact`);
  }
  const path = tempPath();
  const run = child(`for (let i = 0; i < 5; i++) audit.write(event(i));\nwriter.flush();\nconsole.log('ready');\nsetInterval(() => {}, 1000);`, { AUDIT_PATH: path, EVERY: '3' });
  await run.ready;
  process.kill(run.pid, 'SIGKILL');
  await run.done;
  const { lines } = readTrail(path);
  t.equal(lines.at(-1)!.kind, 'audit', 'kill -9: no final checkpoint');
  t.same((await verifyTrail([path], { keys: [publicKey] })).findings.map((f) => f.kind), ['truncated'], 'the events after the last checkpoint are reported');
});

t.test('a rotated file is followed: the stream goes on in the new file', async (t) => {
  const path = tempPath();
  const writer = new LineWriter({ path, reopenCheckMs: 0 });
  const audit = new AuditLog(createLogger({ level: 'info', destination: writer }), undefined, { chain: { signingKey: PEM, every: 2, intervalMs: 0 } });
  for (let i = 1; i <= 3; i++) audit.write(event(i));
  writer.flushSync();
  renameSync(path, `${path}.1`); // logrotate's default: rename, and the writer creates the file again
  for (let i = 4; i <= 6; i++) audit.write(event(i));
  auditTrailOf(writer)!.close();
  const before = readTrail(`${path}.1`).lines;
  const after = readTrail(path).lines;
  t.same(before.map((l) => l.seq), [1, 2, 3, 4], 'what was written before the rotation stays in the rotated file');
  t.same(after.map((l) => l.seq), [5, 6, 7, 8, 9, 10], 'what came after is in the new file');
  t.equal(after[0]!.prev, lineHash(readFileSync(`${path}.1`, 'utf8').split('\n').at(-2)!), 'and chained to the rotated one');
  t.equal((await verifyTrail([`${path}.1`, path], { keys: [publicKey] })).intact, true, 'both files, oldest first: intact');
});

t.test('config: log destinations and the chain, with the signing key as a file reference', async (t) => {
  const cfgDir = mkdtempSync(join(dir, 'cfg-'));
  const { privateKey: rsa } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  writeFileSync(join(cfgDir, 'ed.pem'), PEM);
  writeFileSync(join(cfgDir, 'rsa.pem'), rsa.export({ type: 'pkcs8', format: 'pem' }) as string);
  writeFileSync(join(cfgDir, 'junk.pem'), 'not a key\n');
  const env = { ...process.env, KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN };
  const providers = `providers:\n  - { name: files, kind: local, match: "local://files/", root: ${cfgDir} }\n`;
  const parse = (log: string) => parseConfig(baseYaml(providers).replace('log: { level: debug }', log), { env, baseDir: cfgDir });

  mkdirSync(join(cfgDir, 'logs')); // a log file's folder must exist (check-config and serve check it)
  const defaults = parse('log: { level: info }').log;
  t.match(defaults, { destination: 'stdout', auditDestination: undefined, audit: true, auditChain: { signingKey: undefined, checkpointEvery: 1000, checkpointInterval: 60_000 } });
  const set = parse('log:\n  destination: logs/keyhole.log\n  auditDestination: stdout\n  auditChain: { signingKey: "${file:ed.pem}", checkpointEvery: 50, checkpointInterval: 10s }').log;
  t.equal(set.destination, join(cfgDir, 'logs/keyhole.log'), "a relative path is taken from the config file's folder");
  t.equal(set.auditDestination, 'stdout');
  t.equal(set.auditChain.signingKey?.reveal(), PEM.replace(/\n$/, ''));
  t.match(set.auditChain, { checkpointEvery: 50, checkpointInterval: 10_000 });

  const problems = (log: string) => {
    try {
      parse(log);
    } catch (err) {
      if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
      throw err;
    }
    return [];
  };
  t.match(problems('log: { auditChain: { signingKey: "${file:rsa.pem}" } }'), [/^log\.auditChain\.signingKey: must be an Ed25519 key, not rsa/]);
  t.match(problems('log: { auditChain: { signingKey: "${file:junk.pem}" } }'), [/^log\.auditChain\.signingKey: must be a private key in PEM/]);
  t.match(problems(`log: { auditChain: { signingKey: ${JSON.stringify(PEM)} } }`), [/^log\.auditChain\.signingKey: must be a reference/], 'never inline');
  t.match(problems('log: { auditChain: { checkpointEvery: 0 } }'), [/^log\.auditChain\.checkpointEvery/]);
});
