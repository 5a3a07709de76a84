// Log lines to a file descriptor (stdout), batched: one write(2) per batch of up to 64 KiB
// instead of one per few lines, made on the main thread. An asynchronous fs.write goes
// through the thread pool, and on a busy core that hop (a futex wake, a context switch, an
// eventfd back) cost more per request than building the audit line (docs/performance.md).
//
// Writes are synchronous, like Node's own stdout for files and pipes on Linux and like
// nginx's buffered access_log: a log reader that stops reading holds Keyhole up rather than
// losing audit lines. A non-blocking descriptor that is full (EAGAIN) is retried on a timer;
// past `maxPendingBytes` waiting, new lines are dropped and counted (`dropped`).
// Given a file `path` instead of a descriptor, the writer appends to it and opens it again
// once it was renamed or removed (log rotation), so no signal is needed to follow a rotation.
import { closeSync, fstatSync, openSync, statSync, writeSync } from 'node:fs';

/** Writes of at most PIPE_BUF bytes to a pipe are atomic: lines of processes sharing it never mix. */
const PIPE_BUF = 4096;

export interface LineWriterOptions {
  /** default 1 (stdout) */
  fd?: number;
  /** the batch: written out when full (default 64 KiB) */
  batchBytes?: number;
  /** and never later than this after a line came in (default 100 ms) */
  flushMs?: number;
  /**
   * Other processes write to the same descriptor (cluster workers): to a pipe or socket,
   * batches go out in writes of whole lines of at most PIPE_BUF bytes each.
   */
  shared?: boolean;
  /** bound on what waits in memory while the descriptor refuses writes (default 16 MiB) */
  maxPendingBytes?: number;
  /**
   * A file to append to, instead of `fd`: opened here (O_APPEND, created with mode 0640), and
   * opened again when the path no longer names it (renamed or removed by a log rotation).
   * Opening it throws, so a destination that cannot be written fails at start-up.
   */
  path?: string;
  /** with `path`: how often a flush checks whether the file was rotated away (default 1000 ms) */
  reopenCheckMs?: number;
}

/** every writer, flushed at process exit */
const writers = new Set<LineWriter>();

export class LineWriter {
  private fd: number;
  private readonly path: string | undefined;
  private readonly reopenCheckMs: number;
  private nextReopenCheck = 0;
  private readonly flushMs: number;
  private readonly maxPending: number;
  /** split batches into PIPE_BUF-sized writes of whole lines */
  private readonly atomic: boolean;
  /** the batch: lines are encoded into it as they come (no string kept alive), and it is reused */
  private readonly batch: Buffer;
  private used = 0;
  /** bytes a full descriptor refused, oldest first: written before anything newer */
  private readonly held: Buffer[] = [];
  private heldBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private failed: NodeJS.ErrnoException | undefined;
  /** lines dropped: the descriptor stayed full past maxPendingBytes, or writing failed */
  dropped = 0;
  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.flush();
  };

  constructor(opts: LineWriterOptions = {}) {
    this.path = opts.path;
    this.reopenCheckMs = opts.reopenCheckMs ?? 1000;
    this.fd = this.path !== undefined ? openSync(this.path, 'a', 0o640) : (opts.fd ?? 1);
    this.batch = Buffer.allocUnsafe(opts.batchBytes ?? 65536);
    this.flushMs = opts.flushMs ?? 100;
    this.maxPending = opts.maxPendingBytes ?? 16 * 1024 * 1024;
    this.atomic = opts.shared === true && isPipeOrSocket(this.fd);
    if (writers.size === 0) process.once('exit', () => writers.forEach((w) => w.flushSync()));
    writers.add(this);
  }

  /** Queues one or more whole lines (each ending in '\n'). */
  write(text: string): boolean {
    if (this.failed !== undefined) {
      this.dropped += countLines(text);
      return false;
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (this.used + text.length * 3 > this.batch.length) {
      this.flush();
      if (this.failed !== undefined) {
        this.dropped += countLines(text);
        return false;
      }
      if (this.used + text.length * 3 > this.batch.length) {
        // larger than the whole batch: queued as its own bytes
        this.hold(Buffer.from(text));
        this.flush();
        return this.failed === undefined;
      }
    }
    this.used += this.batch.write(text, this.used, 'utf8');
    this.timer ??= setTimeout(this.onTimer, this.flushMs).unref();
    return true;
  }

  /** Writes what is waiting now (pino's logger.flush calls this). */
  flush(cb?: (err?: Error) => void): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.writeOut(false);
    // a full descriptor: try again soon
    if (this.failed === undefined && (this.heldBytes > 0 || this.used > 0)) this.timer ??= setTimeout(this.onTimer, 10).unref();
    cb?.(this.failed);
  }

  /** At exit: everything waiting, waiting out a full descriptor for up to a second. */
  flushSync(): void {
    this.writeOut(true);
  }

  /** Writes what waits and leaves the descriptor alone from now on (it stays open). */
  close(): void {
    this.flushSync();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    writers.delete(this);
  }

  private writeOut(wait: boolean): void {
    if (this.failed !== undefined) return;
    if (this.path !== undefined && (this.used > 0 || this.heldBytes > 0)) this.followRotation(this.path);
    if (this.used > 0) {
      const batch = this.batch.subarray(0, this.used);
      this.used = 0;
      if (this.held.length === 0) {
        const left = this.writeAll(batch, wait);
        // the batch buffer is reused: what the descriptor refused is copied out
        if (left !== undefined) this.hold(Buffer.from(left));
        return;
      }
      this.hold(Buffer.from(batch)); // behind what is already held, in order
    }
    while (this.held.length > 0 && this.failed === undefined) {
      const first = this.held[0]!;
      const left = this.writeAll(first, wait);
      if (left !== undefined) {
        this.held[0] = left;
        this.heldBytes -= first.length - left.length;
        return;
      }
      this.held.shift();
      this.heldBytes -= first.length;
    }
  }

  /** Opens `path` again when it names another file than the one written (or none): rotated. */
  private followRotation(path: string): void {
    const now = Date.now();
    if (now < this.nextReopenCheck) return;
    this.nextReopenCheck = now + this.reopenCheckMs;
    try {
      const named = statSync(path);
      const open = fstatSync(this.fd);
      if (named.ino === open.ino && named.dev === open.dev) return;
    } catch {
      // renamed away and not created again yet, or unreadable: open (create) it
    }
    try {
      const fd = openSync(path, 'a', 0o640);
      closeSync(this.fd);
      this.fd = fd;
    } catch {
      // the folder is gone or read-only: keep appending to the file already open
    }
  }

  private hold(bytes: Buffer): void {
    if (this.heldBytes + bytes.length > this.maxPending) {
      this.dropped += countLines(bytes);
      return;
    }
    this.held.push(bytes);
    this.heldBytes += bytes.length;
  }

  /** Writes `buf`; returns what a full (non-blocking) descriptor did not take. */
  private writeAll(buf: Buffer, wait: boolean): Buffer | undefined {
    let off = 0;
    let waited = 0;
    while (off < buf.length) {
      const end = this.atomic ? atomicEnd(buf, off) : buf.length;
      try {
        off += writeSync(this.fd, buf, off, end - off);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'EAGAIN' && wait && waited++ < 1000) {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
          continue;
        }
        if (e.code === 'EAGAIN') break;
        this.fail(e, buf.subarray(off));
        return undefined;
      }
    }
    return off < buf.length ? buf.subarray(off) : undefined;
  }

  /** EPIPE, EBADF …: nobody reads these lines any more. Counted, and said once, on stderr. */
  private fail(e: NodeJS.ErrnoException, unwritten: Buffer): void {
    this.failed = e;
    this.dropped += countLines(unwritten);
    for (const b of this.held) this.dropped += countLines(b);
    this.held.length = 0;
    this.heldBytes = 0;
    this.dropped += countLines(this.batch.subarray(0, this.used));
    this.used = 0;
    try {
      process.stderr.write(`keyhole: log output failed (${e.code ?? e.message}); later log lines are dropped\n`);
    } catch {
      // stderr is gone too
    }
  }
}

function isPipeOrSocket(fd: number): boolean {
  try {
    const st = fstatSync(fd);
    return st.isFIFO() || st.isSocket();
  } catch {
    return false;
  }
}

/** End of the longest run of whole lines from `off` that fits in PIPE_BUF (one line, if longer). */
function atomicEnd(buf: Buffer, off: number): number {
  if (buf.length - off <= PIPE_BUF) return buf.length;
  const nl = buf.lastIndexOf(10, off + PIPE_BUF - 1);
  if (nl >= off) return nl + 1;
  const next = buf.indexOf(10, off + PIPE_BUF);
  return next === -1 ? buf.length : next + 1;
}

function countLines(data: Buffer | string): number {
  let n = 0;
  if (typeof data === 'string') {
    for (let i = data.indexOf('\n'); i !== -1; i = data.indexOf('\n', i + 1)) n++;
  } else {
    for (let i = data.indexOf(10); i !== -1; i = data.indexOf(10, i + 1)) n++;
  }
  return n;
}
