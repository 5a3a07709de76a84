// `keyhole audit verify` on real log files: a trail written by three processes at once into
// one file (AuditLog as Keyhole runs it, operational lines between), and one written by a real
// `workers: 2` Keyhole. Untouched, they verify intact; each kind of tampering — an edited,
// deleted, duplicated or inserted line, lines reordered, the file truncated, rotated files with
// a gap, a forged checkpoint — is reported at its file:line, and the exit status says so.
import t from 'tap';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Agent } from 'undici';
import { verifyTrail, readVerifyKey, type Finding, type VerifyReport } from '../../src/cli/audit-verify.ts';
import { testCerts } from '../helpers/certs.ts';
import { dataUrl } from '../helpers/keyhole.ts';
import { opsYaml, spawnKeyhole } from '../helpers/spawn.ts';

t.setTimeout(300_000);

const ROOT = resolve(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'keyhole-audit-verify-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const pair = () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { priv: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, pub: publicKey.export({ type: 'spki', format: 'pem' }) as string };
};
const signing = pair();
const KEY = join(dir, 'key.pem');
const PUB = join(dir, 'key.pub.pem');
writeFileSync(KEY, signing.priv);
writeFileSync(PUB, signing.pub);
const OTHER_PUB = join(dir, 'other.pub.pem');
writeFileSync(OTHER_PUB, pair().pub);
const keys = [readVerifyKey(PUB)];

/** `keyhole audit verify …` as ops run it: exit code and output. */
function cli(args: string[], stdin?: string): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli.ts'), 'audit', ...args], { cwd: ROOT, stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  if (stdin !== undefined) child.stdin!.end(stdin);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  return new Promise((r) => child.once('exit', (code) => r({ code, out, err })));
}

/** A process writing `events` audit events to `path` through AuditLog, an operational line after each, flushing often so that processes interleave. */
function writer(path: string, worker: number, events: number, every: number, startAt: number): Promise<void> {
  const script = `
    import { AuditLog, auditEvent } from ${JSON.stringify(join(ROOT, 'src/observe/audit.ts'))};
    import { LineWriter } from ${JSON.stringify(join(ROOT, 'src/observe/line-writer.ts'))};
    import { createLogger } from ${JSON.stringify(join(ROOT, 'src/observe/logger.ts'))};
    import { readFileSync } from 'node:fs';
    const writer = new LineWriter({ path: ${JSON.stringify(path)} });
    const logger = createLogger({ level: 'info', destination: writer }).child({ worker: ${worker} });
    const audit = new AuditLog(logger, undefined, { chain: { signingKey: readFileSync(${JSON.stringify(KEY)}, 'utf8'), every: ${every}, intervalMs: 0 } });
    await new Promise((r) => setTimeout(r, ${startAt} - Date.now())); // all processes at once
    for (let i = 1; i <= ${events}; i++) {
      audit.write(auditEvent({ id: 'w${worker}-' + i, kind: 'data', reason: i % 5 ? 'ok' : 'scope_denied', sub: 'user' + (i % 3), uri: 'local://files/' + i + '.txt', bytes: i * 10 }));
      logger.info({ i }, 'an operational line');
      writer.flush();
      await new Promise((r) => setTimeout(r, 1 + ((i * ${worker}) % 4)));
    }
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  return new Promise((r, reject) => child.once('exit', (code) => (code === 0 ? r() : reject(new Error(`writer ${worker} exited ${code}`)))));
}

interface Parsed {
  /** 0-based index in the file's lines */
  i: number;
  kind: string;
  stream?: string;
  seq?: number;
}

/** The file's lines (without newline), parsed enough to pick lines to tamper with. */
function load(path: string): { lines: string[]; parsed: Parsed[]; streams: Map<string, Parsed[]> } {
  const lines = readFileSync(path, 'utf8').split('\n').slice(0, -1);
  const parsed = lines.map((l, i) => ({ i, ...(JSON.parse(l) as { kind: string; stream?: string; seq?: number }) }));
  const streams = new Map<string, Parsed[]>();
  for (const p of parsed) if (p.stream !== undefined) streams.set(p.stream, [...(streams.get(p.stream) ?? []), p]);
  return { lines, parsed, streams };
}

let copies = 0;
function write(lines: string[], name = `tampered-${copies++}.log`, end = '\n'): string {
  const path = join(dir, name);
  writeFileSync(path, lines.join('\n') + end);
  return path;
}

const kinds = (r: VerifyReport) => r.findings.map((f) => f.kind);
const at = (f: Finding) => `${f.file.slice(dir.length + 1)}:${f.line}`;

let trail: string;
let streamLines: Parsed[][];
let all: string[];

t.before(async () => {
  trail = join(dir, 'workers.log');
  const startAt = Date.now() + 8000; // past the processes' start-up (tsx), on a busy machine too
  await Promise.all([1, 2, 3].map((w) => writer(trail, w, 40, 7, startAt)));
  const { lines, streams } = load(trail);
  all = lines;
  streamLines = [...streams.values()];
});

t.test('an untouched trail of three processes, interleaved with operational lines, is intact', async (t) => {
  t.equal(streamLines.length, 3, 'three streams');
  const interleaved = streamLines.every((s) => s.some((p, j) => j > 0 && p.i !== s[j - 1]!.i + 2));
  t.ok(interleaved, 'the processes wrote into each other’s lines');
  const report = await verifyTrail([trail], { keys });
  t.same(report.findings, []);
  t.equal(report.intact, true);
  t.same(
    report.streams.map((s) => [s.worker, s.firstSeq, s.lastSeq, s.events, s.checkpoints, s.closed]).sort(),
    [1, 2, 3].map((w) => [w, 1, 46, 40, 6, true]),
    'every stream whole: 40 events, 5 checkpoints and the final one',
  );
  t.equal(report.files[0]!.lines - report.files[0]!.auditLines, 120, 'the operational lines are skipped');
  const run = await cli(['verify', trail, '--key', PUB]);
  t.equal(run.code, 0, 'exit 0');
  t.match(run.out, /INTACT/);
  t.match(run.out, /3 stream\(s\)/);
  const json = await cli(['verify', '--json', '-', '--key', KEY], readFileSync(trail, 'utf8'));
  t.equal(json.code, 0, 'from stdin; the private key verifies too');
  t.match(JSON.parse(json.out), { intact: true, findings: [], streams: [{ closed: true }, { closed: true }, { closed: true }] });
});

t.test('an edited line is reported at its line, whatever was changed in it', async (t) => {
  const s = streamLines[0]!;
  const target = s[10]!;
  t.equal(target.kind, 'audit');
  const lines = [...all];
  lines[target.i] = lines[target.i]!.replace(/"bytes":\d+/, '"bytes":0');
  t.not(lines[target.i], all[target.i], 'the bytes field changed');
  const path = write(lines);
  const r = await verifyTrail([path], { keys });
  t.same(kinds(r), ['edited']);
  t.equal(r.findings[0]!.line, target.i + 1, `reported at the edited line (${at(r.findings[0]!)})`);
  t.equal(r.findings[0]!.seq, target.seq);
  const run = await cli(['verify', path, '--key', PUB]);
  t.equal(run.code, 1, 'exit 1');
  t.match(run.out, new RegExp(`TAMPERED.*\\n.*${path.replaceAll('.', '\\.')}:${target.i + 1} +edited`));

  // A checkpoint's signature edited: forged, and its line no longer what the next line records.
  const cp = s.find((p) => p.kind === 'audit-checkpoint')!;
  const forged = [...all];
  forged[cp.i] = forged[cp.i]!.replace(/"sig":"(.)/, (_m, c: string) => `"sig":"${c === 'A' ? 'B' : 'A'}`);
  const fr = await verifyTrail([write(forged)], { keys });
  t.same(kinds(fr).sort(), ['bad-signature', 'edited']);
  t.ok(fr.findings.every((f) => f.line === cp.i + 1), 'both at the checkpoint');
  // The last line of a stream, its final checkpoint, edited: its signature says so.
  const last = s.at(-1)!;
  const final = [...all];
  final[last.i] = final[last.i]!.replace('"final":true', '"final":false');
  const rf = await verifyTrail([write(final)], { keys });
  t.same(kinds(rf), ['bad-signature', 'truncated'], 'a final checkpoint turned periodic: forged, and so the line covered by nothing');
  t.ok(rf.findings.every((f) => f.line === last.i + 1));
});

t.test('deleted lines are reported where they were', async (t) => {
  const s = streamLines[1]!;
  const gone = s[20]!;
  const next = s[21]!;
  const lines = all.filter((_, i) => i !== gone.i);
  const r = await verifyTrail([write(lines)], { keys });
  t.same(kinds(r), ['deleted']);
  t.equal(r.findings[0]!.line, next.i, 'at the next line of its stream (one line up now)');
  t.equal(r.findings[0]!.seq, gone.seq);
  t.match(r.findings[0]!.message, `seq ${gone.seq} missing between`);

  const block = new Set([s[5]!.i, s[6]!.i, s[7]!.i]);
  const r3 = await verifyTrail([write(all.filter((_, i) => !block.has(i)))], { keys });
  t.same(kinds(r3), ['deleted']);
  t.match(r3.findings[0]!.message, `seq ${s[5]!.seq}–${s[7]!.seq} (3 lines) missing`);

  // An audit line turned into something else is as good as deleted: the gap shows.
  const hidden = [...all];
  hidden[gone.i] = hidden[gone.i]!.replace('"kind":"audit"', '"kind":"other"');
  t.same(kinds(await verifyTrail([write(hidden)], { keys })), ['deleted']);
});

t.test('reordered lines are reported; the order between processes is not evidence', async (t) => {
  const s = streamLines[2]!;
  const [a, b] = [s[12]!, s[13]!];
  const swapped = [...all];
  swapped[a.i] = all[b.i]!;
  swapped[b.i] = all[a.i]!;
  const r = await verifyTrail([write(swapped)], { keys });
  t.same(kinds(r), ['reordered'], 'two lines of a stream swapped: one finding, nothing else');
  t.equal(r.findings[0]!.line, b.i + 1, 'at the line that came too late');
  t.match(r.findings[0]!.message, `seq ${a.seq} written before seq ${b.seq}`);

  // One line moved four lines of its stream earlier: one finding naming it.
  const moved = s[30]!;
  const lines = [...all];
  lines.splice(moved.i, 1);
  lines.splice(s[26]!.i, 0, all[moved.i]!);
  const rm = await verifyTrail([write(lines)], { keys });
  t.same(kinds(rm), ['reordered']);
  t.match(rm.findings[0]!.message, `seq ${s[26]!.seq}–${s[29]!.seq}`);
  t.match(rm.findings[0]!.message, `written before seq ${moved.seq} (`);

  // Two audit lines of different processes, next to each other among the audit lines, swapped:
  // each stream is still in order.
  const audits = streamLines.flat().sort((x, y) => x.i - y.i);
  const j = audits.findIndex((p, n) => n > 0 && p.stream !== audits[n - 1]!.stream);
  t.ok(j > 0, 'two processes wrote one after the other');
  const [x, y] = [audits[j - 1]!, audits[j]!];
  const across = [...all];
  across[x.i] = all[y.i]!;
  across[y.i] = all[x.i]!;
  const ra = await verifyTrail([write(across)], { keys });
  t.same(ra.findings, [], 'streams are checked each on its own');
});

t.test('a truncated trail: lines after the last checkpoint, or a stream without its final checkpoint', async (t) => {
  const cut = Math.floor(all.length * 0.6);
  const lines = all.slice(0, cut);
  const path = write(lines);
  const r = await verifyTrail([path], { keys });
  // What each stream's last line kept is: an event (truncated), a periodic checkpoint (not closed), its final one (whole).
  const expected = streamLines
    .map((s) => s.filter((p) => p.i < cut).at(-1)!)
    .map((p) => (p === undefined || (p.kind !== 'audit' && JSON.parse(all[p.i]!).final) ? undefined : p.kind === 'audit' ? 'truncated' : 'not-closed'))
    .filter((k) => k !== undefined);
  t.ok(expected.includes('truncated'), `a stream cut after events: ${expected.join(', ')}`);
  t.same(kinds(r).sort(), expected.sort(), 'one finding per stream that was cut');
  t.match(r.findings.find((f) => f.kind === 'truncated')!.message, /not covered by a checkpoint: possibly truncated/);
  t.equal((await cli(['verify', path, '--key', PUB])).code, 1, 'exit 1');

  // Cut exactly after a periodic checkpoint: nothing uncovered, but the stream never closed.
  const s = streamLines[0]!;
  const cp = s.find((p) => p.kind === 'audit-checkpoint')!;
  const only = new Set(s.map((p) => p.i));
  const rest = all.filter((_, i) => !only.has(i) || i <= cp.i);
  t.same(kinds(await verifyTrail([write(rest)], { keys })), ['not-closed']);

  // Cut inside a line.
  const mid = write(all.slice(0, cut), undefined, '\n' + all[cut]!.slice(0, 40));
  const rc = await verifyTrail([mid], { keys });
  t.ok(kinds(rc).includes('cut-line'), 'the cut line is reported');
  t.equal(rc.findings.find((f) => f.kind === 'cut-line')!.line, cut + 1);

  // A window of a live trail: --partial makes these notes.
  const partial = await verifyTrail([path], { keys, partial: true });
  t.same(partial.findings, []);
  t.equal(partial.notes.filter((n) => /truncated|not-closed/.test(n)).length, expected.length);
  t.equal((await cli(['verify', '--partial', path, '--key', PUB])).code, 0, 'exit 0 with --partial');
});

t.test('rotated files: intact in order (gzip too); a gap between files; given in the wrong order; the oldest missing', async (t) => {
  const a = Math.floor(all.length / 3);
  const b = Math.floor((2 * all.length) / 3);
  const oldest = join(dir, 'audit.log.2.gz');
  writeFileSync(oldest, gzipSync(all.slice(0, a).join('\n') + '\n'));
  const middle = write(all.slice(a, b), 'audit.log.1');
  const newest = write(all.slice(b), 'audit.log');
  const r = await verifyTrail([oldest, middle, newest], { keys });
  t.same(r.findings, [], 'three files, oldest first: intact');
  t.equal(r.streams.length, 3);

  // The last lines of the middle file lost (a rotation that cut, a copytruncate race).
  const lost = all.slice(b - 6, b).map((l) => JSON.parse(l) as { stream?: string });
  const shortMiddle = write(all.slice(a, b - 6), 'audit.log.1-short');
  const rg = await verifyTrail([oldest, shortMiddle, newest], { keys });
  t.ok(kinds(rg).length > 0 && kinds(rg).every((k) => k === 'gap-between-files'), `only gaps between files: ${kinds(rg).join(', ')}`);
  t.equal(rg.findings.length, new Set(lost.map((l) => l.stream).filter(Boolean)).size, 'one per stream that lost lines');
  t.ok(rg.findings.every((f) => f.file === newest), 'reported where the streams go on');
  t.match(rg.findings[0]!.message, /missing between .*audit\.log\.1-short:\d+ and this line/);

  const wrong = await verifyTrail([newest, middle, oldest], { keys });
  t.ok(kinds(wrong).includes('reordered'));
  t.match(wrong.notes.join('\n'), /oldest first/, 'a hint about the order of the files');

  const recent = await verifyTrail([middle, newest], { keys });
  t.same([...new Set(kinds(recent))], ['head-missing'], 'the oldest file not given: every stream begins late');
  t.same((await verifyTrail([middle, newest], { keys, partial: true })).findings, [], '--partial: a window of the trail');
  const run = await cli(['verify', oldest, middle, newest, '--key', PUB]);
  t.equal(run.code, 0, 'the CLI reads the gzip file too');
});

t.test('inserted lines: a copy, a forgery in the chain, a line without one', async (t) => {
  const e = streamLines[0]!.find((p) => p.kind === 'audit' && p.seq! > 10)!;
  const copy = [...all];
  copy.splice(e.i + 1, 0, all[e.i]!);
  const rc = await verifyTrail([write(copy)], { keys });
  t.same(kinds(rc), ['duplicated']);
  t.equal(rc.findings[0]!.line, e.i + 2);
  t.match(rc.findings[0]!.message, `the same line as before (first at `);

  const forged = [...all];
  forged.splice(e.i + 1, 0, all[e.i]!.replace(/"id":"[^"]+"/, '"id":"forged"'));
  t.not(forged[e.i + 1], all[e.i]);
  const rf = await verifyTrail([write(forged)], { keys });
  t.same(kinds(rf), ['duplicated']);
  t.match(rf.findings[0]!.message, /a second line claims seq/);

  const unchained = [...all];
  unchained.splice(3, 0, '{"level":"info","time":"2030-01-01T00:00:00.000Z","service":"keyhole","kind":"audit","audit":{"id":"x","kind":"data"},"msg":"access"}');
  unchained.splice(5, 0, '{"level":"info","kind":"audit", broken');
  const ru = await verifyTrail([write(unchained)], { keys });
  t.same(ru.findings.map((f) => [f.kind, f.line]), [['unchained', 4], ['unreadable', 6]]);
});

t.test('keys: another key, no key, a key of the wrong type, unreadable files', async (t) => {
  const other = await verifyTrail([trail], { keys: [readVerifyKey(OTHER_PUB)] });
  t.equal(kinds(other).filter((k) => k === 'unknown-key').length, 18, 'every checkpoint: signed by a key not given');
  const both = await verifyTrail([trail], { keys: [readVerifyKey(OTHER_PUB), ...keys] });
  t.same(both.findings, [], 'a rotated key: both given, each checkpoint finds its own');
  const none = await verifyTrail([trail]);
  t.equal(none.intact, true);
  t.match(none.notes.join('\n'), /signatures not checked \(no --key\): 18 checkpoint/);
  const run = await cli(['verify', trail]);
  t.equal(run.code, 0);
  t.match(run.out, /NOT checked/);

  const rsa = join(dir, 'rsa.pub.pem');
  writeFileSync(rsa, generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string);
  const bad = await cli(['verify', trail, '--key', rsa]);
  t.equal(bad.code, 2, 'exit 2: a key that cannot sign checkpoints');
  t.match(bad.err, /an rsa key; checkpoints are signed with Ed25519/);
  const missing = await cli(['verify', trail, join(dir, 'no-such.log')]);
  t.equal(missing.code, 2, 'exit 2: a file that cannot be read');
  t.match(missing.err, /no-such\.log: ENOENT/);
  const usage = await cli(['verify']);
  t.equal(usage.code, 2);
  t.match(usage.err, /needs at least one FILE/);
});

t.test('a real Keyhole with two workers: its audit file verifies intact after a drain, and an edit shows', async (t) => {
  const root = mkdtempSync(join(dir, 'files-'));
  writeFileSync(join(root, 'a.txt'), 'hello\n');
  const auditFile = join(dir, 'keyhole-audit.log');
  const yaml = 'workers: 2\n' + opsYaml(root, '', { log: `{ level: info, auditDestination: ${auditFile}, auditChain: { signingKey: "\${file:${KEY}}", checkpointEvery: 5 } }` });
  const k = await spawnKeyhole(yaml, { startTimeoutMs: 90_000 });
  t.teardown(() => k.stop());
  // One HTTP/1.1 connection per request, spread over both workers (HTTP/2 would multiplex them onto one).
  const fresh = new Agent({ connect: { ca: readFileSync(testCerts().caCert) }, pipelining: 0, allowH2: false });
  t.teardown(() => fresh.close());
  const token = await k.token({ sub: 'alice' });
  for (let i = 0; i < 24; i++) {
    const r = await k.get(dataUrl(i % 4 === 0 ? 'local://files/missing.txt' : 'local://files/a.txt'), { headers: i % 6 === 5 ? {} : { authorization: `Bearer ${token}` }, dispatcher: fresh });
    t.ok([200, 401, 404].includes(r.status), `request ${i}: ${r.status}`);
  }
  k.child.kill('SIGTERM');
  t.equal((await k.exited).code, 0, 'drained');
  t.notOk(k.logs.some((l) => l.kind === 'audit'), 'no audit line on stdout: they have their own file');

  const report = await verifyTrail([auditFile], { keys });
  t.same(report.findings, [], 'intact');
  t.equal(report.streams.length, 2, 'one stream per worker');
  t.same(report.streams.map((s) => s.worker).sort(), [1, 2]);
  t.equal(report.streams.reduce((n, s) => n + s.events, 0), 24, 'every request audited');
  t.ok(report.streams.every((s) => s.closed), 'both workers wrote their final checkpoint');
  t.equal((await cli(['verify', auditFile, '--key', PUB])).code, 0);

  const { lines, parsed } = load(auditFile);
  const target = parsed.find((p) => p.kind === 'audit' && parsed.some((q) => q.stream === p.stream && q.seq === p.seq! + 1))!;
  const edited = [...lines];
  edited[target.i] = edited[target.i]!.replace('"sub":"alice"', '"sub":"mallory"').replace(/"status":\d+/, '"status":200');
  t.not(edited[target.i], lines[target.i]);
  const r = await verifyTrail([write(edited)], { keys });
  t.same(r.findings.map((f) => [f.kind, f.line]), [['edited', target.i + 1]]);
});
