// MIME types the way browsers read them: WHATWG MIME Sniffing's parser and serializer
// (undici's, loaded by its own path like src/relay/undici.ts: the package index would load
// fetch), and Fetch's "extract a MIME type", which reads a Content-Type header as a list
// and keeps the LAST valid type. Test vectors: web-platform-tests (test/fixtures/mime/).
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const mimeFunctions = createRequire(import.meta.url)('undici/lib/web/fetch/data-url.js') as Pick<typeof Undici, 'parseMIMEType' | 'serializeAMimeType'>;

/** A parsed MIME type: type and subtype in lower case, parameters in header order. */
export type MimeType = Exclude<ReturnType<typeof Undici.parseMIMEType>, 'failure'>;

/** MIME Sniffing "parse a MIME type"; undefined where the standard says failure. */
export function parseMimeType(input: string): MimeType | undefined {
  const parsed = mimeFunctions.parseMIMEType(input);
  return parsed === 'failure' ? undefined : parsed;
}

/** MIME Sniffing "serialize a MIME type" (parameter values quoted where needed). */
export const serializeMimeType: (mimeType: MimeType) => string = mimeFunctions.serializeAMimeType;

/**
 * Fetch "extract a MIME type" from a Content-Type field: its lines (as undici hands a repeated
 * field: an array) combined with ", ", split on commas outside quoted strings, each piece
 * parsed; the last valid one that is not the wildcard type wins, keeping an earlier charset
 * of the same essence. Undefined when no piece is valid (the standard's failure).
 */
export function extractMimeType(field: string | readonly string[] | undefined): MimeType | undefined {
  if (field === undefined) return undefined;
  const combined = typeof field === 'string' ? field : field.join(', ');
  let charset: string | undefined;
  let essence: string | undefined;
  let mimeType: MimeType | undefined;
  for (const value of splitFieldValues(combined)) {
    const candidate = parseMimeType(value);
    if (candidate === undefined || candidate.essence === '*/*') continue;
    mimeType = candidate;
    if (candidate.essence !== essence) {
      charset = candidate.parameters.get('charset');
      essence = candidate.essence;
    } else if (!candidate.parameters.has('charset') && charset !== undefined) {
      candidate.parameters.set('charset', charset);
    }
  }
  return mimeType;
}

/**
 * Fetch "get, decode, and split" a header value (after the get, and with the isomorphic
 * decode undici already did): commas inside an HTTP quoted string do not split, each value
 * loses its surrounding tabs and spaces, and the quoted string is kept as written (quotes
 * and backslashes included) for the MIME parser to read. "" gives [""].
 */
export function splitFieldValues(input: string): string[] {
  const values: string[] = [];
  let position = 0;
  let value = '';
  for (;;) {
    let stop = position;
    while (stop < input.length && input.charCodeAt(stop) !== 0x22 && input.charCodeAt(stop) !== 0x2c) stop++;
    value += input.slice(position, stop);
    position = stop;
    if (position < input.length && input.charCodeAt(position) === 0x22) {
      const end = quotedStringEnd(input, position);
      value += input.slice(position, end);
      position = end;
      if (position < input.length) continue;
    }
    values.push(trimTabOrSpace(value));
    value = '';
    if (position >= input.length) return values;
    position++; // past the comma
  }
}

/** Where an HTTP quoted string starting at `start` (a '"') ends: after its closing quote, or at the end. */
function quotedStringEnd(input: string, start: number): number {
  let position = start + 1;
  while (position < input.length) {
    const c = input.charCodeAt(position);
    if (c === 0x22) return position + 1;
    position += c === 0x5c ? 2 : 1; // a backslash escapes the next code point (or ends the input)
  }
  return input.length;
}

function trimTabOrSpace(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && (s.charCodeAt(start) === 0x20 || s.charCodeAt(start) === 0x09)) start++;
  while (end > start && (s.charCodeAt(end - 1) === 0x20 || s.charCodeAt(end - 1) === 0x09)) end--;
  return s.slice(start, end);
}

/** HTTP token code points: a value made only of these needs no quotes, in any parser. */
const TOKEN = /^[-!#$%&'*+.^_`|~A-Za-z0-9]+$/;

/**
 * The one Content-Type Keyhole sends for `mimeType`: its essence and the parameters whose
 * values are tokens. A value that needs quotes is dropped rather than sent: a quoted comma
 * or semicolon is where parsers disagree (one splitting a list where another reads a
 * parameter), and none of the types Keyhole serves needs one.
 */
export function headerSafeMimeType(mimeType: MimeType): string {
  let out = mimeType.essence;
  for (const [name, value] of mimeType.parameters) if (TOKEN.test(value)) out += `;${name}=${value}`;
  return out;
}

/**
 * WHATWG MIME Sniffing's "JavaScript MIME type" essences: what a browser runs from <script>
 * (classic and module), workers, service workers, worklets and importScripts, and what
 * nosniff lets through for those loads. Every other type is refused there under nosniff.
 */
export const JAVASCRIPT_ESSENCES: readonly string[] = Object.freeze([
  'application/ecmascript', 'application/javascript', 'application/x-ecmascript', 'application/x-javascript',
  'text/ecmascript', 'text/javascript', 'text/javascript1.0', 'text/javascript1.1', 'text/javascript1.2',
  'text/javascript1.3', 'text/javascript1.4', 'text/javascript1.5', 'text/jscript', 'text/livescript',
  'text/x-ecmascript', 'text/x-javascript',
]);

/**
 * Types a browser applies or runs by their type alone, besides script: text/css (stylesheets,
 * @import and CSS module scripts: nosniff lets only this type through), XSLT stylesheets,
 * application/wasm (WebAssembly.compileStreaming/instantiateStreaming take no other), and
 * text/x-component (old IE behaviors: no browser today, none may bring it back).
 */
const APPLIED_ESSENCES = new Set(['text/css', 'text/xsl', 'application/xslt+xml', 'application/wasm', 'text/x-component']);

/** Every spelling of script in a subtype: wider than any browser's list, so none can be longer. */
const SCRIPT_SUBTYPE = /javascript|ecmascript|jscript|livescript/;

/**
 * Whether a page could make `essence` run or apply on the origin that serves it (a script,
 * worker, service worker, stylesheet…), by loading it as a subresource: every JavaScript MIME
 * type, any subtype that spells script, and the applied types above. JSON is data (a JSON
 * module runs no code), images and media only decode.
 */
export function runsOrApplies(essence: string): boolean {
  return APPLIED_ESSENCES.has(essence) || SCRIPT_SUBTYPE.test(essence.slice(essence.indexOf('/') + 1));
}

/**
 * The type a data answer of a running or applied type is sent as: text/plain, its charset
 * kept (a token value only). Under nosniff no browser runs or applies text/plain as a script,
 * worker or stylesheet, and opened in a tab the file still reads as what it is.
 */
export function inertTextType(mimeType: MimeType): string {
  const charset = mimeType.parameters.get('charset');
  return charset !== undefined && TOKEN.test(charset) ? `text/plain;charset=${charset}` : 'text/plain';
}
