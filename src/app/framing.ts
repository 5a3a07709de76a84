// Request framing checks for requests forwarded to the app (request smuggling).
// Node's parser (llhttp) already answers 400 before any handler runs for: Content-Length
// with Transfer-Encoding: chunked, repeated or list-valued Content-Length, a Transfer-Encoding
// that does not end in chunked, repeated Transfer-Encoding lines, obs-fold, bare LF, and
// whitespace before the colon. It lets these through, and we refuse them here:
//  - Transfer-Encoding that is anything but exactly `chunked` ("gzip, chunked", "identity,
//    chunked"): the app would see a coding we removed when we re-chunk the body;
//  - an empty Transfer-Encoding beside Content-Length: two framings, whichever one wins;
//  - Transfer-Encoding on an HTTP/1.0 request (RFC 9112 §6.1: faulty framing);
//  - a Content-Length that is not plain digits within a safe integer.
// HTTP/2 frames a body by its DATA frames (nghttp2 holds them to any Content-Length and
// refuses Transfer-Encoding): a body without Content-Length is re-chunked for the app.
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';

export type Framing =
  | { ok: true; length: number | undefined; chunked: boolean }
  | { ok: false; why: string };

export function requestFraming(req: IncomingMessage): Framing {
  const raw = req.rawHeaders;
  let lengths = 0;
  let encodings = 0;
  let length: string | undefined;
  let encoding: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'content-length') {
      lengths++;
      length = raw[i + 1]!;
    } else if (name === 'transfer-encoding') {
      encodings++;
      encoding = raw[i + 1]!;
    }
  }
  if (lengths > 1) return { ok: false, why: 'repeated Content-Length' };
  if (encodings > 1) return { ok: false, why: 'repeated Transfer-Encoding' };
  if (lengths === 1 && encodings === 1) return { ok: false, why: 'Content-Length and Transfer-Encoding together' };
  if (encoding !== undefined) {
    if (encoding.trim().toLowerCase() !== 'chunked') return { ok: false, why: 'Transfer-Encoding other than chunked' };
    if (req.httpVersionMajor !== 1 || req.httpVersionMinor < 1) return { ok: false, why: 'Transfer-Encoding on HTTP/1.0' };
    return { ok: true, length: undefined, chunked: true };
  }
  if (length !== undefined) {
    const value = length.trim();
    if (!/^\d{1,15}$/.test(value)) return { ok: false, why: 'malformed Content-Length' };
    return { ok: true, length: Number(value), chunked: false };
  }
  if (req.httpVersionMajor === 2 && !(req as unknown as Http2ServerRequest).stream.endAfterHeaders) return { ok: true, length: undefined, chunked: true };
  return { ok: true, length: undefined, chunked: false };
}

// A connection whose request was refused for its framing is closing (Connection: close),
// but Node keeps parsing what follows on it and would hand a pipelined request to the
// handler: exactly the request an attacker hid in the body. Such requests are dropped.
const refused = new WeakSet<object>();

export function markRefused(socket: object): void {
  refused.add(socket);
}

export function wasRefused(socket: object): boolean {
  return refused.has(socket);
}
