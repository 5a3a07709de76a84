// The batched log writer (src/observe/line-writer.ts) on real descriptors: a file, FIFOs,
// the pipe and socket a parent reads a child's stdout through, a pipe shared by several
// processes. Lines must arrive whole, in order and byte-exact; a full descriptor delays them
// rather than losing them (up to a bound, past which they are counted); a dead reader makes
// writes fail quietly and counted; and what waits at exit is written before the process ends.
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants, fstatSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { LineWriter } from '../../src/observe/line-writer.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 400);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MODULE = new URL('../../src/observe/line-writer.ts', import.meta.url).href;
const dir = mkdtempSync(join(tmpdir(), 'keyhole-line-writer-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Line i of writer w: JSON, one in five about 3000 bytes, padded with w's own letter so a mix-up shows. */
function line(w: string, i: number): string {
  const n = i % 5 === 0 ? 2800 + (i % 200) : 20 + ((i * 131) % 600);
  return JSON.stringify({ w, i, pad: w.repeat(n) }) + '\n';
}

const lines = (w: string, count: number): string => Array.from({ length: count }, (_, i) => line(w, i)).join('');

let files = 0;
function tempFile(): { path: string; fd: number } {
  const path = join(dir, `out-${files++}.log`);
  return { path, fd: openSync(path, 'w') };
}

function fifo(): string {
  const path = join(dir, `fifo-${files++}`);
  execFileSync('mkfifo', [path]);
  return path;
}

/** Everything a non-blocking read end holds now. */
function drain(fd: number, into: Buffer[]): void {
  const buf = Buffer.allocUnsafe(65536);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return;
      throw err;
    }
    if (n === 0) return;
    into.push(Buffer.from(buf.subarray(0, n)));
  }
}

/** Reads `fd` (non-blocking) until `done` says so or 10 s pass, letting the writer's retry timer run. */
async function readUntil(fd: number, done: (got: Buffer) => boolean): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const end = Date.now() + 10_000;
  for (;;) {
    drain(fd, chunks);
    const got = Buffer.concat(chunks);
    if (done(got) || Date.now() > end) return got;
    await sleep(5);
  }
}

// --- in this process: a file ---------------------------------------------------------------

t.test('a file: nothing is written until the timer fires, then every line, in order', async (t) => {
  const { path, fd } = tempFile();
  t.teardown(() => closeSync(fd));
  const w = new LineWriter({ fd, flushMs: 600 });
  const text = lines('a', 40);
  const started = Date.now();
  const queued = Array.from({ length: 40 }, (_, i) => w.write(line('a', i)));
  t.ok(queued.every((q) => q), 'every line queued');
  t.equal(fstatSync(fd).size, 0, 'nothing written as lines come in');
  await sleep(100);
  t.equal(fstatSync(fd).size, 0, 'nothing written before flushMs');
  while (fstatSync(fd).size < text.length && Date.now() - started < 5000) await sleep(10);
  t.ok(Date.now() - started >= 590, 'written by the timer, not before');
  t.equal(readFileSync(path, 'utf8'), text, 'every line, whole and in order');

  // flush(): written now, and the callback says it went well.
  w.write('after\n');
  t.equal(fstatSync(fd).size, text.length, 'waiting again');
  const calls: (Error | undefined)[] = [];
  w.flush((err) => calls.push(err));
  t.same(calls, [undefined], 'flush calls back, without an error');
  t.equal(readFileSync(path, 'utf8'), text + 'after\n', 'flush writes at once');
  w.flush((err) => calls.push(err));
  t.same(calls, [undefined, undefined], 'flush with nothing waiting still calls back');
  w.flushSync();
  t.equal(readFileSync(path, 'utf8'), text + 'after\n', 'nothing written twice');
});

t.test('a file: a full batch is written without waiting for the timer', async (t) => {
  const { path, fd } = tempFile();
  t.teardown(() => closeSync(fd));
  const w = new LineWriter({ fd, batchBytes: 1024, flushMs: 60_000 });
  const one = 'x'.repeat(49) + '\n';
  for (let i = 0; i < 31; i++) w.write(one); // 1550 bytes: one and a half batches
  const size = fstatSync(fd).size;
  t.ok(size > 0, 'the full batch went out at once');
  t.ok(size <= 1024, `no more than a batch (${size} bytes)`);
  t.ok(size < 31 * 50, 'the rest waits');
  t.equal(size % 50, 0, 'whole lines only');
  t.equal(readFileSync(path, 'utf8'), one.repeat(size / 50));
  w.flush();
  t.equal(readFileSync(path, 'utf8'), one.repeat(31), 'the rest on flush');
});

t.test('a file: a line larger than the batch is written whole, in its place', async (t) => {
  const { path, fd } = tempFile();
  t.teardown(() => closeSync(fd));
  const w = new LineWriter({ fd, batchBytes: 1024, flushMs: 60_000 });
  const big = '{"big":"' + 'b'.repeat(10_000) + '"}\n';
  const wide = '漢'.repeat(3000) + '\n'; // 9001 bytes
  t.equal(w.write('first\n'), true);
  t.equal(w.write(big), true);
  t.equal(readFileSync(path, 'utf8'), 'first\n' + big, 'written at once, after what waited before it');
  w.write('second\n');
  w.write(wide);
  w.write('third\n');
  w.flush();
  t.equal(readFileSync(path, 'utf8'), 'first\n' + big + 'second\n' + wide + 'third\n');
});

t.test('a file: multibyte UTF-8 round-trips byte-exact', async (t) => {
  const { path, fd } = tempFile();
  t.teardown(() => closeSync(fd));
  // A small batch, so characters land on its edges; a lone surrogate is written as U+FFFD (EF BF BD), as Buffer.from does.
  const w = new LineWriter({ fd, batchBytes: 16, flushMs: 60_000 });
  const texts = ['é\n', '漢字\n', '😀\n', 'aé漢😀e\u0301\n', '\u2028\u00a0\ufeff\n', 'x\ud800y\n', '😀'.repeat(5) + '\n', 'ééééééé\n'];
  for (const s of texts) w.write(s);
  w.flush();
  t.same(readFileSync(path), Buffer.from(texts.join('')));

  check('any lines, any batch size, flushed at any point', fc.tuple(fc.array(fc.tuple(fc.string({ unit: 'binary', maxLength: 80 }), fc.boolean()), { maxLength: 30 }), fc.integer({ min: 1, max: 300 })), ([items, batchBytes]) => {
    const out = tempFile();
    try {
      const lw = new LineWriter({ fd: out.fd, batchBytes, flushMs: 60_000 });
      for (const [s, flushNow] of items) {
        lw.write(s + '\n');
        if (flushNow) lw.flush();
      }
      lw.flush();
      return readFileSync(out.path).equals(Buffer.from(items.map(([s]) => s + '\n').join('')));
    } finally {
      closeSync(out.fd);
      unlinkSync(out.path);
    }
  });

  function check<T>(name: string, arb: fc.Arbitrary<T>, pred: (v: T) => boolean): void {
    const res = fc.check(fc.property(arb, pred), { numRuns: RUNS });
    t.notOk(res.failed, `${name} (${res.numRuns} cases)${res.failed ? ` — counterexample ${JSON.stringify(res.counterexample)}` : ''}`);
  }
});

// --- in this process: a FIFO nobody reads, non-blocking (EAGAIN) ---------------------------

/** A non-blocking FIFO (64 KiB in the kernel) open both ways: `wfd` to write, `rfd` to read from when the test chooses. */
function fullablePipe(): { rfd: number; wfd: number } {
  const path = fifo();
  const rfd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const wfd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  return { rfd, wfd };
}

for (const shared of [false, true]) {
  t.test(`a full non-blocking FIFO (shared: ${shared}): lines wait and are retried, none lost, in order`, async (t) => {
    const { rfd, wfd } = fullablePipe();
    t.teardown(() => (closeSync(wfd), closeSync(rfd)));
    const w = new LineWriter({ fd: wfd, batchBytes: 8192, flushMs: 5, shared });
    const text = lines('f', 1000) + '{"big":"' + 'B'.repeat(200_000) + '"}\n' + lines('g', 200); // ~1 MB, a line bigger than the pipe
    t.ok(text.split(/(?<=\n)/).every((l) => w.write(l)), 'every line queued, none refused, nothing thrown');
    t.ok(text.length > 4 * 65536, 'more than the pipe holds: EAGAIN on the way');
    const got = await readUntil(rfd, (b) => b.length >= text.length);
    t.equal(got.length, text.length, 'every byte arrives once the reader reads');
    t.ok(got.toString() === text, 'in order, byte-exact');
    t.equal(w.dropped, 0);
  });
}

for (const shared of [false, true]) {
  t.test(`a full non-blocking FIFO (shared: ${shared}): past maxPendingBytes new lines are dropped and counted`, async (t) => {
    const { rfd, wfd } = fullablePipe();
    t.teardown(() => (closeSync(wfd), closeSync(rfd)));
    const w = new LineWriter({ fd: wfd, batchBytes: 4096, flushMs: 5, shared, maxPendingBytes: 16_384 });
    const sent = 3000;
    for (let i = 0; i < sent; i++) w.write(JSON.stringify({ i, pad: 'p'.repeat(80) }) + '\n');
    t.ok(w.dropped > 0, `dropped while full (${w.dropped})`);
    const whole = (b: Buffer): string[] => b.toString().split('\n').slice(0, -1);
    const got = await readUntil(rfd, (b) => b.length > 0 && b[b.length - 1] === 10 && whole(b).length + w.dropped === sent);
    const received = whole(got);
    t.equal(received.length + w.dropped, sent, `every line written or counted (${received.length} written, ${w.dropped} dropped)`);
    t.ok(got.length <= 65536 + 16_384 + 4096 + 2 * 100, 'no more than the pipe, the bound and a batch');
    let last = -1;
    let ordered = true;
    for (const l of received) {
      const i = (JSON.parse(l) as { i: number }).i; // throws on a torn line
      ordered &&= i > last;
      last = i;
    }
    t.ok(ordered, 'what is written is whole lines, in order');
  });
}

t.test('flushSync waits out a full descriptor for about a second, then returns; nothing is lost', async (t) => {
  const { rfd, wfd } = fullablePipe();
  t.teardown(() => (closeSync(wfd), closeSync(rfd)));
  const w = new LineWriter({ fd: wfd, batchBytes: 4096, flushMs: 60_000 });
  const text = lines('s', 300); // ~240 KB: the pipe takes 64 KiB
  for (const l of text.split(/(?<=\n)/)) w.write(l);
  const started = Date.now();
  w.flushSync();
  const waited = Date.now() - started;
  t.ok(waited >= 900 && waited < 10_000, `waited ${waited} ms`);
  const got = await readUntil(rfd, (b) => b.length >= text.length);
  t.ok(got.toString() === text, 'the rest is retried once the reader reads, in order');
  t.equal(w.dropped, 0);
});

// --- child processes --------------------------------------------------------------------------

/** A child that writes line(name, i) for i < count through a LineWriter, configured by LW_CFG. */
const WRITER_SCRIPT = `
import { openSync, readFileSync, writeSync, constants } from 'node:fs';
const { LineWriter } = await import(process.env.LW_MODULE);
const cfg = JSON.parse(process.env.LW_CFG);
const name = process.argv[2] ?? 'a';
const line = ${line.toString()};
if (cfg.touchStdout) void process.stdout; // libuv makes a pipe or socket non-blocking when stdout is first used
// /proc/self/fd/1 opened again: the same pipe, through a descriptor of its own (blocking).
const fd = cfg.reopen ? openSync('/proc/self/fd/1', constants.O_WRONLY) : 1;
const w = new LineWriter({ fd, shared: cfg.shared, batchBytes: cfg.batchBytes, flushMs: cfg.flushMs });
const also = cfg.alsoFile ? new LineWriter({ fd: openSync(cfg.alsoFile, 'w'), batchBytes: cfg.batchBytes, flushMs: cfg.flushMs }) : undefined;
process.on('exit', () => writeSync(2, 'done ' + name + ' dropped=' + w.dropped + '\\n'));
for (let i = 0; i < cfg.count; i++) {
  const l = line(name, i);
  w.write(l);
  also?.write(l);
}
if (cfg.announce) writeSync(2, 'flags ' + /flags:\\s*(\\d+)/.exec(readFileSync('/proc/self/fdinfo/' + fd, 'utf8'))[1] + '\\nexiting\\n');
if (cfg.end === 'exit') process.exit(0);
`;

/** A child whose log reader is gone: its stdout (the parent closes it, then says go) or a FIFO it closes itself. */
const EPIPE_SCRIPT = `
import { closeSync, constants, openSync, writeSync } from 'node:fs';
const { LineWriter } = await import(process.env.LW_MODULE);
const cfg = JSON.parse(process.env.LW_CFG);
let fd = 1;
if (cfg.fifo) {
  const r = openSync(cfg.fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  fd = openSync(cfg.fifo, constants.O_WRONLY);
  closeSync(r);
}
const w = new LineWriter({ fd, batchBytes: 4096, flushMs: 60000 });
function go() {
  const out = { threw: null, returns: [], dropped: [], cbErr: 'not called' };
  try {
    for (let i = 0; i < 10; i++) out.returns.push(w.write('line ' + i + '\\n'));
    w.flush((err) => (out.cbErr = err?.code ?? null));
    out.dropped.push(w.dropped);
    for (let i = 10; i < 15; i++) out.returns.push(w.write('line ' + i + '\\n'));
    out.returns.push(w.write('L'.repeat(10000) + '\\n'));
    w.flush();
    w.flushSync();
    out.dropped.push(w.dropped);
  } catch (err) {
    out.threw = String(err);
  }
  writeSync(2, 'RESULT ' + JSON.stringify(out) + '\\n');
  process.exit(0);
}
if (cfg.fifo) go();
else process.stdin.once('data', go);
`;

const writerScript = join(dir, 'writer.mjs');
const epipeScript = join(dir, 'epipe.mjs');
writeFileSync(writerScript, WRITER_SCRIPT);
writeFileSync(epipeScript, EPIPE_SCRIPT);
const nodeCmd = (script: string, arg = ''): string => `'${process.execPath}' --import tsx '${script}' ${arg}`;

interface Done {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  ms: number;
}

/** Runs a command with stdout and stderr piped; `setup` may take over reading. Killed after 60 s. */
function run(cmd: string, args: string[], cfg: object, setup?: (child: ChildProcess, stdout: Buffer[]) => void): Promise<Done> {
  const started = Date.now();
  const child = spawn(cmd, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LW_MODULE: MODULE, LW_CFG: JSON.stringify(cfg) } });
  const out: Buffer[] = [];
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  if (setup) setup(child, out);
  else child.stdout!.on('data', (c: Buffer) => out.push(c));
  const kill = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(kill);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err, ms: Date.now() - started });
    });
  });
}

t.test('process exit writes what waits, in every writer', async (t) => {
  const alsoFile = join(dir, 'exit-also.log');
  // One batch holds everything and the timer is a minute away: only the exit hook can write these lines.
  const r = await run(process.execPath, ['--import', 'tsx', writerScript, 'e'], { count: 500, batchBytes: 4 << 20, flushMs: 60_000, end: 'exit', alsoFile });
  t.equal(r.code, 0, r.stderr);
  t.ok(r.stdout.toString() === lines('e', 500), `stdout: every line, in order (${r.stdout.length} bytes)`);
  t.ok(readFileSync(alsoFile, 'utf8') === lines('e', 500), 'the second writer, a file, too');
  t.match(r.stderr, /done e dropped=0/);
});

t.test('a process that simply ends: the timer does not hold it, and exit writes what waits', async (t) => {
  const r = await run(process.execPath, ['--import', 'tsx', writerScript, 'n'], { count: 300, batchBytes: 4 << 20, flushMs: 60_000, end: 'natural' });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.signal, null, 'ended by itself, well before flushMs');
  t.ok(r.ms < 50_000);
  t.ok(r.stdout.toString() === lines('n', 300), 'every line, in order');
});

t.test('process exit waits out a full non-blocking stdout', async (t) => {
  let exiting = false;
  // The parent does not read until the child says it is exiting: ~2 MB cannot fit in the socket meanwhile.
  const r = await run(process.execPath, ['--import', 'tsx', writerScript, 'x'], { count: 2500, flushMs: 60_000, end: 'exit', touchStdout: true, announce: true }, (child, out) => {
    let err = '';
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      if (exiting || !err.includes('exiting\n')) return;
      exiting = true;
      child.stdout!.on('data', (b: Buffer) => out.push(b));
    });
  });
  const flags = /flags (\d+)/.exec(r.stderr);
  t.ok(flags && (parseInt(flags[1]!, 8) & constants.O_NONBLOCK) !== 0, `stdout is non-blocking in the child (${flags?.[1]})`);
  t.equal(r.code, 0, r.stderr);
  t.ok(exiting);
  t.ok(r.stdout.length > 1 << 20, `more than the socket holds (${r.stdout.length} bytes)`);
  t.ok(r.stdout.toString() === lines('x', 2500), 'every line, in order');
});

/** Every line whole, each writer's lines all there and in order; bad lines listed (a few). */
function checkLines(t: Test, out: Buffer, names: string[], count: number): void {
  const text = out.toString();
  t.ok(text.endsWith('\n'), 'ends at a line end');
  const next: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  const bad: string[] = [];
  for (const l of text.split('\n').slice(0, -1)) {
    let v: { w: string; i: number } | undefined;
    try {
      v = JSON.parse(l) as { w: string; i: number };
    } catch {
      // torn or mixed: reported below
    }
    if (v === undefined || !(v.w in next) || v.i !== next[v.w] || l + '\n' !== line(v.w, v.i)) {
      if (bad.length < 3) bad.push(l.length > 160 ? `${l.slice(0, 80)} … ${l.slice(-80)}` : l);
      continue;
    }
    next[v.w]!++;
  }
  t.same(bad, [], 'no line is torn or mixed with another');
  t.same(next, Object.fromEntries(names.map((n) => [n, count])), `every writer's ${count} lines, in order`);
}

// Three processes share one descriptor: a pipe made by sh (their stdout made non-blocking by
// tsx, as a worker's is once something uses process.stdout), the same pipe opened again by each
// (blocking), and the parent's socket. The parent stops reading now and then so it fills.
const SHARED = [
  { name: 'a pipe, non-blocking', pipe: true, reopen: false },
  { name: 'a pipe, blocking', pipe: true, reopen: true },
  { name: 'a socket, non-blocking', pipe: false, reopen: false },
];
for (const v of SHARED) {
  t.test(`shared: true on ${v.name}: lines of several processes never mix`, async (t) => {
    const names = ['a', 'b', 'c'];
    const count = 3000;
    const all = names.map((n) => nodeCmd(writerScript, n) + ' &').join(' ') + ' wait';
    const r = await run('sh', ['-c', v.pipe ? `( ${all} ) | cat` : all], { count, shared: true, flushMs: 20, end: 'exit', reopen: v.reopen }, (child, out) => {
      let chunks = 0;
      child.stdout!.on('data', (c: Buffer) => {
        out.push(c);
        if (++chunks % 8 === 0) {
          child.stdout!.pause();
          setTimeout(() => child.stdout!.resume(), 3);
        }
      });
    });
    t.equal(r.code, 0, r.stderr);
    for (const n of names) t.match(r.stderr, new RegExp(`done ${n} dropped=0`), `writer ${n} dropped nothing`);
    checkLines(t, r.stdout, names, count);
  });
}

t.test('a dead reader (EPIPE): write() never throws; what was waiting and every later line is counted', async (t) => {
  const expectFailure = (r: Done): void => {
    t.equal(r.code, 0, r.stderr);
    const m = /RESULT (.*)/.exec(r.stderr);
    t.ok(m, 'the child reported');
    const res = JSON.parse(m?.[1] ?? '{}') as { threw: string | null; returns: boolean[]; dropped: number[]; cbErr: string | null };
    t.equal(res.threw, null, 'nothing thrown');
    t.same(res.returns, [...Array<boolean>(10).fill(true), ...Array<boolean>(6).fill(false)], 'queued before the failure; refused after it');
    t.equal(res.cbErr, 'EPIPE', "flush's callback gets the error");
    t.same(res.dropped, [10, 16], 'the ten that failed, then every later line');
    t.equal(r.stderr.match(/log output failed \(EPIPE\)/g)?.length, 1, 'said once, on stderr');
  };

  // The child's stdout: the parent closes its end, then tells the child to write.
  expectFailure(
    await run(process.execPath, ['--import', 'tsx', epipeScript], {}, (child) => {
      child.stdout!.on('close', () => child.stdin!.end('go\n'));
      child.stdout!.destroy();
    }),
  );
  // A pipe (FIFO) whose only reader the child has closed.
  expectFailure(await run(process.execPath, ['--import', 'tsx', epipeScript], { fifo: fifo() }));
});

t.test('a reader that dies while bytes are held: said once, every line counted exactly once', async (t) => {
  const { rfd, wfd } = fullablePipe();
  t.teardown(() => closeSync(wfd));
  const stderr: string[] = [];
  const realWrite = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => (stderr.push(String(chunk)), true)) as typeof process.stderr.write;
  t.teardown(() => void (process.stderr.write = realWrite));
  const w = new LineWriter({ fd: wfd, batchBytes: 4096, flushMs: 60_000 });
  const sent = 2000;
  for (let i = 0; i < sent; i++) w.write(JSON.stringify({ i, pad: 'q'.repeat(100) }) + '\n'); // far more than the pipe: some held
  closeSync(rfd); // the only reader goes away with bytes held and a batch waiting
  w.write('{"after":1}\n');
  w.flush();
  w.flush();
  t.equal(stderr.filter((s) => s.includes('log output failed (EPIPE)')).length, 1, 'said once');
  t.ok(w.dropped > 0 && w.dropped <= sent + 1, `held, waiting and later lines counted (${w.dropped})`);
  const before = w.dropped;
  t.notOk(w.write('{"later":1}\n{"later":2}\n'), 'later writes are refused');
  t.equal(w.dropped, before + 2, 'one write of two lines counts two');
});

t.test('close() writes what waits and stops the timer; the descriptor stays open', async (t) => {
  const out = tempFile();
  t.teardown(() => closeSync(out.fd));
  const w = new LineWriter({ fd: out.fd, flushMs: 60_000 });
  w.write('a\n');
  w.close();
  t.equal(readFileSync(out.path, 'utf8'), 'a\n');
  t.doesNotThrow(() => fstatSync(out.fd), 'still open');
});
