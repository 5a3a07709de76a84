// Which headers cross Keyhole, in each direction. Everything not listed here is dropped:
// an upstream's Set-Cookie, Server, x-amz-* or Location never reaches the browser.
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { extractMimeType, headerSafeMimeType, inertTextType, runsOrApplies } from './mime.ts';
import type { DataRequest } from './data-request.ts';
import type { RangeResult } from './range.ts';

/** Client headers forwarded upstream: ranges and revalidation, nothing else. */
export const FORWARDED_REQUEST_HEADERS = ['range', 'if-range', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since'] as const;

/**
 * Upstream headers passed back to the client. Content-Encoding travels with the bytes it
 * describes (an object stored compressed is sent compressed: its length, ranges and ETag
 * are those of the encoded bytes). Content-Type is never passed as sent: see dataType.
 *
 * Values are relayed as the bytes the upstream sent (undici reads them as latin1, Node writes
 * latin1). Content-Disposition comes before Content-Length: Node's writeHead re-reads a
 * Content-Disposition that follows a Content-Length as UTF-8 (nodejs/node#46528), which
 * mangles a filename of UTF-8 bytes into characters it then refuses (the answer was a 502).
 */
export const RELAYED_RESPONSE_HEADERS = ['content-disposition', 'content-length', 'content-range', 'accept-ranges', 'etag', 'last-modified', 'content-encoding'] as const;

/**
 * Every data answer's sandbox. A document from Keyhole's origin is the labeling app's
 * origin: whatever type a browser renders as a document, it runs no script, loads nothing
 * and gets an opaque origin. <img>, <audio>, <video> and fetch() ignore a response's CSP.
 */
export const SANDBOX = "sandbox; default-src 'none'";
/**
 * Audio and video opened on their own: the browser's player fetches the same URL again,
 * which an opaque origin could only do with CORS. With nosniff these types never render as
 * anything but that player (a +xml subtype would render as XML: not these), and scripts stay
 * off (no allow-scripts).
 */
export const MEDIA_SANDBOX = "sandbox allow-same-origin; default-src 'none'; media-src 'self'";
const PLAYABLE = /^(audio|video)\/[^+]+$/;

/** The header fields a judged type puts on an answer, as flat [name, value, …]. */
export interface DataType {
  /** the one type sent: what the browser sees is what was judged */
  readonly contentType: string;
  readonly fields: readonly string[];
}

const OCTET_STREAM: DataType = judged('application/octet-stream');

function judged(contentType: string): DataType {
  const csp = PLAYABLE.test(contentType.split(';', 1)[0]!) ? MEDIA_SANDBOX : SANDBOX;
  return Object.freeze({ contentType, fields: Object.freeze(['cache-control', 'private', 'x-content-type-options', 'nosniff', 'content-security-policy', csp]) });
}

// Judgments of the field values seen lately: a deployment serves a handful of types. Bounded
// in entries and key length: the keys are whatever upstreams send.
const recent = new Map<string, DataType>();
const RECENT_MAX = 256;
const RECENT_KEY_MAX = 256;

/**
 * THE judgment of a data answer's type, for every provider: the type a browser would read
 * from `field` (Fetch's extract a MIME type: the last valid one of a list, however many
 * lines), sent as one type so that no browser can read another; application/octet-stream
 * when there is none; text/plain for a type that runs or applies as a subresource (script,
 * stylesheet, WebAssembly: mime.ts runsOrApplies). With it, the security fields for that
 * type, sandbox included.
 */
export function dataType(field: string | readonly string[] | undefined): DataType {
  if (field === undefined) return OCTET_STREAM;
  if (typeof field !== 'string' || field.length > RECENT_KEY_MAX) return judge(field);
  let hit = recent.get(field);
  if (hit === undefined) {
    hit = judge(field);
    if (recent.size >= RECENT_MAX) recent.clear();
    recent.set(field, hit);
  }
  return hit;
}

function judge(field: string | readonly string[]): DataType {
  const mimeType = extractMimeType(field);
  if (mimeType === undefined) return OCTET_STREAM;
  // The sandbox governs documents only: a <script>, worker, service worker or stylesheet
  // from Keyhole's origin would run or apply on the app's origin whatever CSP it carries.
  return judged(runsOrApplies(mimeType.essence) ? inertTextType(mimeType) : headerSafeMimeType(mimeType));
}

/**
 * Loads that run or apply what they fetch (scripts of every kind, workers, worklets, styles,
 * XSLT) or install it (a web app manifest), as browsers announce them with Fetch metadata.
 * A data answer is never one of these; json (a JSON module) is data and stays.
 */
const RUNNING_DESTINATIONS = new Set(['script', 'worker', 'sharedworker', 'serviceworker', 'style', 'paintworklet', 'audioworklet', 'sharedstorageworklet', 'xslt', 'manifest']);

/**
 * Why a data request is one a browser makes to run or apply the answer on Keyhole's origin
 * (its Sec-Fetch-Dest, or the Service-Worker header of a service worker's script fetch), or
 * undefined. Curl and SDKs send neither; browsers send both only to secure origins, so the
 * type judgment stands on its own (see dataType).
 */
export function runningDestination(headers: IncomingHttpHeaders): string | undefined {
  const dest = headers['sec-fetch-dest'];
  if (typeof dest === 'string' && RUNNING_DESTINATIONS.has(dest.trim().toLowerCase())) return `Sec-Fetch-Dest: ${dest}`;
  if (headers['service-worker'] !== undefined) return 'Service-Worker: script';
  return undefined;
}

export function forwardedRequestHeaders(client: IncomingHttpHeaders, into: Record<string, string>): Record<string, string> {
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const v = client[name];
    if (typeof v === 'string') into[name] = v;
  }
  return into;
}

/** Security headers on every data response and the judged content type, for providers that set headers by name. */
export function dataResponseHeaders(contentType: string | undefined, out: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const type = dataType(contentType);
  const fields = type.fields;
  for (let i = 0; i < fields.length; i += 2) out[fields[i]!] = fields[i + 1]!;
  out['content-type'] = type.contentType;
  return out;
}

/**
 * The relayed answer's header fields in one flat list: `head` (the request's own fields),
 * then the allowlisted upstream headers, the security headers of every data answer and the
 * judged type. A 304 carries no Content-Type (its headers update the browser's stored
 * response, and browsers keep the stored type); it carries the sandbox, strict when the
 * upstream's 304 names no type, so that no stored answer outlives its sandbox.
 */
export function relayedResponseFields(upstream: IncomingHttpHeaders, head: readonly string[], status: number): string[] {
  const out = head.slice();
  for (const name of RELAYED_RESPONSE_HEADERS) {
    // undici hands a repeated field as an array, whatever IncomingHttpHeaders says
    const v = upstream[name] as string | readonly string[] | undefined;
    if (typeof v === 'string') out.push(name, v);
    // Repeated: a framing header (length, range) is ambiguous, keep none; an encoding is a list.
    else if (v !== undefined && name === 'content-encoding') out.push(name, v.join(', '));
  }
  const type = dataType(upstream['content-type']);
  out.push(...type.fields);
  if (status !== 304) out.push('content-type', type.contentType);
  return out;
}

/** Sets flat [name, value, …] header fields one by one (answers that go out through setHeader). */
export function setFields(res: ServerResponse, fields: readonly string[]): void {
  for (let i = 0; i < fields.length; i += 2) res.setHeader(fields[i]!, fields[i + 1]!);
}

/** One writeHead for a data answer: the request's own fields (`head`), then the provider's. */
export function writeDataHead(res: ServerResponse, status: number, head: readonly string[], fields: OutgoingHttpHeaders): void {
  const out = head.slice();
  for (const name in fields) {
    const v = fields[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const item of v) out.push(name, item);
    else out.push(name, String(v));
  }
  res.writeHead(status, out);
}

/**
 * The head of an answer a provider serves itself (local files, Redis values) for an object of
 * `size` bytes, `range` parsed from the request (http/range.ts): 416 (Content-Range `bytes *` and the size),
 * else 206 with Content-Range or 200, with the Content-Length of what follows. Returns the
 * inclusive byte span to send, or undefined when no body follows (416, HEAD, an empty
 * object: the answer is ended here).
 */
export function writeRangedHead(res: ServerResponse, req: DataRequest, fields: OutgoingHttpHeaders, range: RangeResult, size: number): { start: number; end: number } | undefined {
  if (range.kind === 'unsatisfiable') {
    req.outcome.reason = 'range_not_satisfiable';
    writeDataHead(res, 416, req.head, { ...fields, 'content-range': `bytes */${size}`, 'content-length': 0 });
    res.end();
    return undefined;
  }
  const start = range.kind === 'partial' ? range.start : 0;
  const end = range.kind === 'partial' ? range.end : size - 1;
  fields['content-length'] = size === 0 ? 0 : end - start + 1;
  if (range.kind === 'partial') fields['content-range'] = `bytes ${start}-${end}/${size}`;
  writeDataHead(res, range.kind === 'partial' ? 206 : 200, req.head, fields);
  if (req.method === 'HEAD' || size === 0) {
    res.end();
    return undefined;
  }
  return { start, end };
}
