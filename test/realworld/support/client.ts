// A raw TLS client for the real-world tests. It reads at the pace it is told (at once, after
// a stall, or a trickle for the whole answer: a slow annotator's connection, so Keyhole's
// writes back up and it pauses its upstream read), can leave mid-body, and checks the
// framing itself instead of trusting a library. Bodies are hashed as they arrive and kept
// only when small: a 50 MiB answer is never held.
import { createHash, type Hash } from 'node:crypto';
import { connect, type TLSSocket } from 'node:tls';

export interface RawAnswer {
  status: number;
  /** the statuses of interim (1xx) heads before the final one */
  interim: number[];
  headers: Record<string, string>;
  /** body bytes after the framing is removed */
  length: number;
  sha256: string;
  /** the body itself when it is at most `keep` bytes, else empty */
  body: Buffer;
  /** the body was complete by its own framing (Content-Length met, the last chunk seen, or a clean close for a close-framed one) */
  complete: boolean;
  framing: 'none' | 'length' | 'chunked' | 'close';
  /** bytes after the end of the framed body (a relay that sends a body where none belongs) */
  excess: number;
}

/** How the client reads: all at once, after a stall, or a trickle (`bytes` per `everyMs`) after a stall. */
export type Pace = { stallMs?: number; trickle?: { bytes: number; everyMs: number } };

/** Slow clients: one that stops reading for a while, one that reads a trickle throughout. */
export const SLOW_READERS: readonly { name: string; pace: Pace }[] = [
  { name: 'stalls 500 ms, then reads', pace: { stallMs: 500 } },
  { name: 'reads 64 KiB every 10 ms', pace: { stallMs: 100, trickle: { bytes: 65536, everyMs: 10 } } },
];

export interface RawOptions {
  port: number;
  ca: Buffer;
  path: string;
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  pace?: Pace;
  /** leave (destroy the socket) after this many body bytes */
  abortAfter?: number;
  /** keep bodies up to this many bytes (default 2 MiB) */
  keep?: number;
  /** give up (reject) after this long without the answer ending */
  timeoutMs?: number;
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Parses a body as it arrives, by the answer's framing. */
class BodyReader {
  length = 0;
  complete = false;
  excess = 0;
  private readonly hash: Hash = createHash('sha256');
  private readonly kept: Buffer[] = [];
  // chunked state
  private remaining = -1; // bytes left in the current chunk; -1: expecting a size line
  private line = Buffer.alloc(0);
  private inTrailers = false;
  private afterData = false; // expecting the CRLF after a chunk's data

  readonly framing: RawAnswer['framing'];
  private readonly declared: number;
  private readonly keep: number;
  constructor(
    framing: RawAnswer['framing'],
    declared: number,
    keep: number,
  ) {
    this.framing = framing;
    this.declared = declared;
    this.keep = keep;
    if (framing === 'none' || (framing === 'length' && declared === 0)) this.complete = true;
  }

  private take(b: Buffer): void {
    if (b.length === 0) return;
    this.length += b.length;
    this.hash.update(b);
    if (this.length <= this.keep) this.kept.push(b);
  }

  push(c: Buffer): void {
    if (this.complete) {
      this.excess += c.length;
      return;
    }
    if (this.framing === 'close') return this.take(c);
    if (this.framing === 'length') {
      const want = this.declared - this.length;
      this.take(c.subarray(0, want));
      if (c.length > want) this.excess += c.length - want;
      if (this.length === this.declared) this.complete = true;
      return;
    }
    this.chunked(c);
  }

  private chunked(c: Buffer): void {
    let at = 0;
    while (at < c.length && !this.complete) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, c.length - at);
        this.take(c.subarray(at, at + n));
        this.remaining -= n;
        at += n;
        if (this.remaining === 0) this.afterData = true;
        continue;
      }
      const eol = c.indexOf(10, at); // a line, possibly split across reads
      if (eol < 0) {
        this.line = Buffer.concat([this.line, c.subarray(at)]);
        return;
      }
      const text = Buffer.concat([this.line, c.subarray(at, eol)]).toString('latin1').replace(/\r$/, '');
      this.line = Buffer.alloc(0);
      at = eol + 1;
      if (this.afterData) {
        this.afterData = false;
        this.remaining = -1;
        continue;
      }
      if (this.inTrailers) {
        if (text === '') this.complete = true;
        continue;
      }
      const size = parseInt(text, 16);
      if (size === 0) this.inTrailers = true;
      else this.remaining = size;
    }
    if (this.complete) this.excess += c.length - at;
  }

  ended(): void {
    if (this.framing === 'close') this.complete = true;
  }

  result(): Pick<RawAnswer, 'length' | 'sha256' | 'body' | 'complete' | 'excess'> {
    return { length: this.length, sha256: this.hash.digest('hex'), body: this.length <= this.keep ? Buffer.concat(this.kept) : Buffer.alloc(0), complete: this.complete, excess: this.excess };
  }
}

function parseHead(text: string): { status: number; headers: Record<string, string> } {
  const lines = text.split('\r\n');
  const status = Number(lines[0]!.split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    const name = l.slice(0, i).trim().toLowerCase();
    const value = l.slice(i + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { status, headers };
}

export function rawRequest(o: RawOptions): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = connect({ host: '127.0.0.1', port: o.port, servername: 'localhost', ca: o.ca });
    const keep = o.keep ?? 2 << 20;
    let pending: Buffer = Buffer.alloc(0);
    let interim: number[] = [];
    let head: { status: number; headers: Record<string, string> } | undefined;
    let body: BodyReader | undefined;
    let done = false;
    let tickBytes = 0;
    let stalled = false;
    const timer = setTimeout(() => {
      socket.destroy();
      if (!done) {
        done = true;
        reject(new Error(`no end of the answer to ${o.method ?? 'GET'} ${o.path} within ${o.timeoutMs ?? 120_000} ms (head: ${head ? head.status : 'none'}, ${body?.length ?? 0} body bytes)`));
      }
    }, o.timeoutMs ?? 120_000);
    const finish = (clean: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!head || !body) return reject(new Error(`no complete head (${pending.length} bytes)`));
      if (clean) body.ended();
      resolve({ ...head, interim, framing: body.framing, ...body.result() });
    };
    const onHead = (h: { status: number; headers: Record<string, string> }) => {
      const te = h.headers['transfer-encoding'];
      const cl = h.headers['content-length'];
      const bodiless = o.method === 'HEAD' || h.status === 204 || h.status === 304;
      const framing: RawAnswer['framing'] = bodiless ? 'none' : te !== undefined && /chunked\s*$/i.test(te) ? 'chunked' : cl !== undefined ? 'length' : 'close';
      head = h;
      body = new BodyReader(framing, Number(cl ?? 0), keep);
    };
    socket.on('secureConnect', () => {
      const fields = Object.entries({ host: 'localhost', connection: 'close', ...o.headers })
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      socket.write(`${o.method ?? 'GET'} ${o.path} HTTP/1.1\r\n${fields}\r\n`);
      if (o.pace?.stallMs) {
        stalled = true;
        socket.pause();
        setTimeout(() => {
          stalled = false;
          socket.resume();
        }, o.pace.stallMs);
      }
    });
    socket.on('data', (c: Buffer) => {
      if (!head) {
        pending = Buffer.concat([pending, c]);
        for (;;) {
          const end = pending.indexOf('\r\n\r\n');
          if (end < 0) return;
          const h = parseHead(pending.subarray(0, end).toString('latin1'));
          const rest = pending.subarray(end + 4);
          if (h.status >= 100 && h.status < 200) {
            interim = [...interim, h.status];
            pending = rest;
            continue;
          }
          onHead(h);
          c = rest;
          break;
        }
      }
      body!.push(c);
      if (o.abortAfter !== undefined && body!.length >= o.abortAfter) {
        socket.destroy();
        return finish(false);
      }
      const trickle = o.pace?.trickle;
      if (trickle && !stalled) {
        tickBytes += c.length;
        if (tickBytes >= trickle.bytes) {
          tickBytes = 0;
          socket.pause();
          setTimeout(() => socket.resume(), trickle.everyMs);
        }
      }
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(false));
    socket.on('error', (err) => {
      if (head) finish(false);
      else if (!done) {
        done = true;
        clearTimeout(timer);
        reject(err);
      }
    });
  });
}
