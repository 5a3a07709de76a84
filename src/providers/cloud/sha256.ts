// SHA-256 and HMAC-SHA256 for @smithy/signature-v4 (its `sha256` option), on node:crypto.
// smithy finds its cached signing key by computing HMAC(secret key, access key id) on every
// presign, and an HMAC object costs about 2 µs: a tenth of a presigned URL. HMAC is a pure
// function, so results for string keys (the long-term secret, and the first step of the
// daily key derivation) are remembered here; derived keys and hashes are computed as asked.
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';

type SourceData = string | ArrayBuffer | ArrayBufferView;

const MEMO_MAX = 64;
const memo = new Map<string, Buffer>();

function bytes(data: SourceData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/** smithy's Checksum: update(), digest(), reset(). */
export class Sha256 {
  private hash: Hash | Hmac | undefined;
  /** what was hashed under a string key, for the memo */
  private chunks: Buffer[] | undefined;

  private readonly secret?: SourceData;
  constructor(secret?: SourceData) {
    this.secret = secret;
    this.reset();
  }

  reset(): void {
    if (typeof this.secret === 'string') {
      this.hash = undefined;
      this.chunks = [];
    } else {
      this.hash = this.secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(this.secret));
      this.chunks = undefined;
    }
  }

  update(chunk: SourceData): void {
    if (this.chunks) this.chunks.push(bytes(chunk));
    else this.hash!.update(bytes(chunk));
  }

  digest(): Promise<Uint8Array> {
    if (!this.chunks) return Promise.resolve(this.hash!.digest());
    const data = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const key = `${this.secret as string}\u0000${data.toString('latin1')}`;
    let out = memo.get(key);
    if (out === undefined) {
      out = createHmac('sha256', this.secret as string).update(data).digest();
      if (memo.size >= MEMO_MAX) memo.clear();
      memo.set(key, out);
    }
    // a copy: callers own what digest() gives them
    return Promise.resolve(Buffer.from(out));
  }
}
