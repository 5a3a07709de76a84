// Log lines to a file descriptor (stdout), batched: one write(2) per batch of up to 64 KiB
// instead of one per few lines, made on the main thread. An asynchronous fs.write goes
// through the thread pool, and on a busy core that hop (a futex wake, a context switch, an
// eventfd back) cost more per request than building the audit line (docs/performance.md).
//
// Writes are synchronous, like Node's own stdout for files and pipes on Linux and like
// nginx's buffered access_log: a log reader that stops reading holds Keyhole up rather than
// losing audit lines. A non-blocking descriptor that is full (EAGAIN) is retried on a timer;
// past `maxPendingBytes` waiting, new lines are dropped and counted (`dropped`).
import { fstatSync, writeSync } from 'node:fs';

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
}

/** every writer, flushed at process exit */
const open = new Set<LineWriter>();

export class LineWriter {
  private readonly fd: number;
  private readonly flushMs: number;
  private readonly maxPending: number;
  /** split batches into PIPE_BUF-sized writes of whole lines */
  private readonly atomic: boolean;
  /** the batch: lines are encoded into it as they come (no string kept alive), and it is reused */
  private readonly batch: Buffer;
  private used = 0;
  /** bytes a full descriptor refused, written before anything newer */
  private refused: Buffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failed: NodeJS.ErrnoException | undefined;
  /** lines dropped: the descriptor was full for too long, or writing failed */
  dropped = 0;
  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.flush();
  };

  constructor(opts: LineWriterOptions = {}) {
    this.fd = opts.fd ?? 1;
    this.batch = Buffer.allocUnsafe(opts.batchBytes ?? 65536);
    this.flushMs = opts.flushMs ?? 100;
    this.maxPending = opts.maxPendingBytes ?? 16 * 1024 * 1024;
    this.atomic = opts.shared === true && isPipeOrSocket(this.fd);
    if (open.size === 0) process.once('exit', () => open.forEach((w) => w.flushSync()));
    open.add(this);
  }

  /** Queues one or more whole lines (each ending in '\n'). */
  write(text: string): boolean {
    if (this.failed !== undefined) {
      this.dropped++;
      return false;
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (this.used + text.length * 3 > this.batch.length) {
      this.flush();
      if (this.used + text.length * 3 > this.batch.length) return this.writeLarge(text);
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
    if (this.refused !== undefined || this.used > 0) this.timer ??= setTimeout(this.onTimer, 10).unref();
    cb?.(this.failed);
  }

  /** At exit: everything waiting, waiting out a full descriptor for up to a second. */
  flushSync(): void {
    this.writeOut(true);
  }

  /** A line larger than the batch (or a batch still held up by a full descriptor): queued as bytes. */
  private writeLarge(text: string): boolean {
    const bytes = Buffer.from(text);
    if ((this.refused?.length ?? 0) + bytes.length > this.maxPending) {
      this.dropped++;
      return false;
    }
    this.refused = this.refused === undefined ? bytes : Buffer.concat([this.refused, bytes]);
    this.flush();
    return true;
  }

  private writeOut(wait: boolean): void {
    if (this.failed !== undefined) return;
    if (this.refused !== undefined) {
      this.refused = this.writeAll(this.refused, wait);
      if (this.refused !== undefined) {
        // Still full: keep the batch's bytes behind what it refused, in order.
        if (this.used > 0 && this.refused.length + this.used <= this.maxPending) this.refused = Buffer.concat([this.refused, this.batch.subarray(0, this.used)]);
        else if (this.used > 0) this.dropped += countLines(this.batch.subarray(0, this.used), 0);
        this.used = 0;
        return;
      }
    }
    if (this.used === 0) return;
    const left = this.writeAll(this.batch.subarray(0, this.used), wait);
    // The batch buffer is reused: what the descriptor refused is copied out.
    this.refused = left === undefined ? undefined : Buffer.from(left);
    this.used = 0;
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
        // EPIPE, EBADF …: nobody reads these lines any more; say so once, on stderr.
        this.failed = e;
        this.dropped += countLines(buf, off);
        try {
          process.stderr.write(`keyhole: log output failed (${e.code ?? e.message}); later log lines are dropped\n`);
        } catch {
          // stderr is gone too
        }
        return undefined;
      }
    }
    return off < buf.length ? buf.subarray(off) : undefined;
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

function countLines(buf: Buffer, off: number): number {
  let n = 0;
  for (let i = buf.indexOf(10, off); i !== -1; i = buf.indexOf(10, i + 1)) n++;
  return n;
}
