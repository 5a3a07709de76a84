// The credential Keyhole injects into an upstream request, as an upstream that echoes the
// request back would show it: what the relay searches every answer's headers and body for,
// so that no byte of it reaches the browser (docs/threat-model.md, hole D).
import type { IncomingHttpHeaders } from 'node:http';

/**
 * The byte strings of one provider's injected credential, as an echo would show them, and
 * the searches the relay makes for them. Covered: each secret as sent or decoded (the
 * caller's forms), and the transformations an echo page applies to text it prints:
 * percent-encoding with upper-case hex (all but RFC 3986's unreserved, as PHP's rawurlencode
 * and Python's quote(safe=''); that and `/`, as Python's quote(); that and `!'()*`, as
 * encodeURIComponent), JSON string escaping (JSON.stringify; and `\/` for `/`, as PHP does)
 * and HTML escaping (`&amp; &lt; &gt; &quot;` with `&#39;` or `&#x27;`). Not covered:
 * anything computed from the secret (a second base64, a hash, a \u escape of non-ASCII, a
 * body compressed against our `accept-encoding: identity`): an echo page prints what it got.
 */
export class InjectedSecrets {
  /** every form, less those that contain a shorter one (found through it) */
  readonly needles: readonly Buffer[];
  /**
   * All needles in one pass: V8 skips through an alternation of literals (about 6 GB/s on
   * 64 KiB, the latin1 copy included), where one Buffer#indexOf per needle costs 20-30 µs per
   * 64 KiB for a short one. A lone needle is searched with Buffer#indexOf, without a copy.
   */
  private readonly anyNeedle: RegExp;
  private readonly onlyNeedle: Buffer | undefined;
  /** the longest needle: how far back a match can start */
  readonly longest: number;
  /** 1 where a needle begins with that byte */
  private readonly firstBytes = new Uint8Array(256);

  private constructor(needles: Buffer[]) {
    this.needles = needles;
    this.anyNeedle = new RegExp(needles.map((n) => n.toString('latin1').replace(REGEXP_SYNTAX, '\\$&')).join('|'));
    this.onlyNeedle = needles.length === 1 ? needles[0] : undefined;
    this.longest = Math.max(...needles.map((n) => n.length));
    for (const n of needles) this.firstBytes[n[0]!] = 1;
  }

  /** The secrets to search for `forms` (raw bytes); none when there is nothing to search. */
  static of(forms: readonly Buffer[]): InjectedSecrets | undefined {
    const all = new Map<string, Buffer>();
    for (const form of forms) {
      if (form.length === 0) continue;
      for (const shown of echoForms(form)) all.set(shown.toString('latin1'), shown);
    }
    // Shortest first: a longer form that contains a kept one is found through it.
    const kept: Buffer[] = [];
    for (const n of [...all.values()].sort((a, b) => a.length - b.length)) {
      if (!kept.some((k) => n.includes(k))) kept.push(n);
    }
    return kept.length > 0 ? new InjectedSecrets(kept) : undefined;
  }

  /** The name of the first header whose value holds a secret: every header, relayed or not. */
  headerHolding(headers: IncomingHttpHeaders): string | undefined {
    for (const name in headers) {
      // undici reads header values as latin1: the needles' own reading
      const value = headers[name];
      if (value === undefined) continue;
      if (typeof value === 'string') {
        if (this.anyNeedle.test(value)) return name;
      } else {
        for (const v of value) if (this.anyNeedle.test(v)) return name;
      }
    }
    return undefined;
  }

  foundIn(bytes: Buffer): boolean {
    return this.onlyNeedle !== undefined ? bytes.includes(this.onlyNeedle) : this.anyNeedle.test(bytes.toString('latin1'));
  }

  /**
   * The length of the longest end of `bytes` that begins a secret: those bytes wait for the
   * next chunk. Cheap: a table look-up for each of the last `longest - 1` bytes, a comparison
   * only where a needle's first byte sits.
   */
  pendingTail(bytes: Buffer): number {
    const end = bytes.length;
    // The earliest start is the longest tail: the first found is the answer.
    for (let at = Math.max(0, end - this.longest + 1); at < end; at++) {
      if (this.firstBytes[bytes[at]!] === 0) continue;
      const length = end - at;
      for (const needle of this.needles) {
        if (length < needle.length && needle[0] === bytes[at] && bytes.compare(needle, 0, length, at, end) === 0) return length;
      }
    }
    return 0;
  }
}

const REGEXP_SYNTAX = /[\\^$.*+?()[\]{}|/-]/g;

/** What each percent-encoder leaves as it is. */
const PERCENT_SAFE = [/[A-Za-z0-9\-._~]/, /[A-Za-z0-9\-._~/]/, /[A-Za-z0-9\-._~!'()*]/];
const JSON_ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** `secret` and the ways an echo page may print it, byte for byte (ASCII transformations). */
function echoForms(secret: Buffer): Buffer[] {
  const text = secret.toString('latin1');
  const mapped = (map: (ch: string) => string): Buffer => {
    let out = '';
    for (const ch of text) out += map(ch);
    return Buffer.from(out, 'latin1');
  };
  const percent = (safe: RegExp) => (ch: string) => (safe.test(ch) ? ch : `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
  const json = (ch: string) => JSON_ESCAPES[ch] ?? (ch < ' ' ? `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}` : ch);
  const html = (ch: string) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch] ?? ch;
  return [
    secret,
    ...PERCENT_SAFE.map((safe) => mapped(percent(safe))),
    mapped(json),
    mapped((ch) => (ch === '/' ? '\\/' : json(ch))),
    mapped(html),
    mapped((ch) => (ch === "'" ? '&#x27;' : html(ch))),
  ];
}
