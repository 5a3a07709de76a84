// A raw HTTP/2 client for what no real client will send: malformed pseudo-headers,
// connection-specific fields, CONTINUATION floods, rapid resets. It writes frames as
// RFC 9113 lays them out, with header blocks in HPACK literals (RFC 7541 §6.2.2, no
// Huffman, no indexing), and reads back only frame types, flags and stream ids: a test asks
// whether the server answered a stream (HEADERS), reset it (RST_STREAM) or the connection
// (GOAWAY), and with which error code.
import { connect, type TLSSocket } from 'node:tls';

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, END_HEADERS: 0x4, ACK: 0x1 } as const;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

function hpackInt(value: number, prefixBits: number, first: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out.push(v);
  return Buffer.from(out);
}

function hpackString(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
  return Buffer.concat([hpackInt(b.length, 7, 0), b]);
}

/** A header block: each field a literal without indexing, names and values as given. */
export function headerBlock(fields: readonly (readonly [string, string | Buffer])[]): Buffer {
  return Buffer.concat(fields.flatMap(([name, value]) => [Buffer.from([0x00]), hpackString(name), hpackString(value)]));
}

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

export function rstStream(stream: number, code = 0x8): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, stream, p);
}

export class RawH2 {
  readonly frames: Frame[] = [];
  private buffered = Buffer.alloc(0);
  closed = false;
  private waiters: (() => void)[] = [];

  private readonly socket: TLSSocket;
  private constructor(socket: TLSSocket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  /** Connects with ALPN h2, sends the preface and an empty SETTINGS, acks the server's. */
  static async open(port: number, ca: Buffer, servername = 'localhost'): Promise<RawH2> {
    const socket = connect({ port, host: '127.0.0.1', servername, ca, ALPNProtocols: ['h2'] });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    if (socket.alpnProtocol !== 'h2') throw new Error(`ALPN gave ${socket.alpnProtocol}`);
    const h2 = new RawH2(socket);
    socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
    return h2;
  }

  send(bytes: Buffer): boolean {
    return !this.socket.destroyed && this.socket.write(bytes);
  }

  /** HEADERS for `stream` with END_HEADERS, and END_STREAM unless a body follows. */
  request(stream: number, fields: readonly (readonly [string, string | Buffer])[], endStream = true): void {
    this.send(frame(FRAME.HEADERS, FLAG.END_HEADERS | (endStream ? FLAG.END_STREAM : 0), stream, headerBlock(fields)));
  }

  private read(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 9) {
      const length = this.buffered.readUIntBE(0, 3);
      if (this.buffered.length < 9 + length) break;
      const f: Frame = { type: this.buffered[3]!, flags: this.buffered[4]!, stream: this.buffered.readUInt32BE(5) & 0x7fffffff, payload: this.buffered.subarray(9, 9 + length) };
      this.buffered = this.buffered.subarray(9 + length);
      this.frames.push(f);
      if (f.type === FRAME.SETTINGS && !(f.flags & FLAG.ACK)) this.send(frame(FRAME.SETTINGS, FLAG.ACK, 0));
    }
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `pred` holds over the frames read so far (or the connection closes). */
  async until(pred: (frames: Frame[]) => boolean, timeoutMs = 5000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (!pred(this.frames)) {
      if (this.closed || Date.now() > end) return pred(this.frames);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50).unref();
      });
    }
    return true;
  }

  /** How the server ended `stream`: 'answered' (a HEADERS frame), 'reset' (RST_STREAM), or undefined. */
  outcome(stream: number): 'answered' | 'reset' | undefined {
    for (const f of this.frames) {
      if (f.stream !== stream) continue;
      if (f.type === FRAME.HEADERS) return 'answered';
      if (f.type === FRAME.RST_STREAM) return 'reset';
    }
    return undefined;
  }

  /** The server ended `stream`: its last frame had END_STREAM, or it was reset. */
  ended(stream: number): boolean {
    return this.frames.some((f) => f.stream === stream && (f.type === FRAME.RST_STREAM || ((f.type === FRAME.DATA || f.type === FRAME.HEADERS) && f.flags & FLAG.END_STREAM)));
  }

  /** The first byte of the answer's header block: HPACK static index 8 (`:status 200`) is 0x88, 12 (400) 0x8c. */
  statusByte(stream: number): number | undefined {
    return this.frames.find((f) => f.stream === stream && f.type === FRAME.HEADERS)?.payload[0];
  }

  /** The DATA bytes the server sent on `stream`. */
  body(stream: number): Buffer {
    return Buffer.concat(this.frames.filter((f) => f.stream === stream && f.type === FRAME.DATA).map((f) => f.payload));
  }

  /** The server's SETTINGS, by identifier (RFC 9113 §6.5.2: 3 is MAX_CONCURRENT_STREAMS). */
  settings(): Map<number, number> {
    const out = new Map<number, number>();
    for (const f of this.frames) {
      if (f.type !== FRAME.SETTINGS || f.flags & FLAG.ACK) continue;
      for (let i = 0; i + 6 <= f.payload.length; i += 6) out.set(f.payload.readUInt16BE(i), f.payload.readUInt32BE(i + 2));
    }
    return out;
  }

  goaway(): { lastStream: number; code: number } | undefined {
    const f = this.frames.find((x) => x.type === FRAME.GOAWAY);
    return f && { lastStream: f.payload.readUInt32BE(0) & 0x7fffffff, code: f.payload.readUInt32BE(4) };
  }

  close(): void {
    this.socket.destroy();
  }
}
