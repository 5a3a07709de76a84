// Byte-range and conditional-request rules (RFC 9110 §13, §14) for providers that serve
// bytes themselves (local files, Redis blobs). Upstream HTTP providers forward the
// headers and let the upstream decide.
import type { IncomingHttpHeaders } from 'node:http';

export type RangeResult = { kind: 'full' } | { kind: 'partial'; start: number; end: number } | { kind: 'unsatisfiable' };

const SINGLE = /^bytes=(\d{0,15})-(\d{0,15})$/;

/**
 * Parses a Range header for an object of `size` bytes. Only one range is served;
 * a multi-range or malformed header is ignored (a full 200 is a valid answer).
 */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'full' };
  const m = SINGLE.exec(header.trim());
  if (!m) return { kind: 'full' };
  const [, a, b] = m as unknown as [string, string, string];
  if (a === '' && b === '') return { kind: 'full' };
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (b !== '' && Number(b) < start) return { kind: 'full' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end };
}

export interface Validators {
  etag: string;
  lastModified: Date;
}

function etagMatches(list: string, etag: string): boolean {
  if (list.trim() === '*') return true;
  const weak = (t: string) => t.trim().replace(/^W\//, '');
  return list.split(',').some((t) => weak(t) === weak(etag));
}

/** True when the client's cached copy is current: answer 304. */
export function notModified(headers: IncomingHttpHeaders, v: Validators): boolean {
  const inm = headers['if-none-match'];
  if (inm !== undefined) return etagMatches(inm, v.etag);
  const ims = headers['if-modified-since'];
  if (ims !== undefined) {
    const t = Date.parse(ims);
    return !Number.isNaN(t) && Math.floor(v.lastModified.getTime() / 1000) <= Math.floor(t / 1000);
  }
  return false;
}

/** If-Range: serve the range only when the client's validator still names this version. */
export function rangeStillValid(headers: IncomingHttpHeaders, v: Validators): boolean {
  const ir = headers['if-range'];
  if (ir === undefined) return true;
  if (typeof ir !== 'string') return false;
  if (ir.startsWith('"') || ir.startsWith('W/')) return !ir.startsWith('W/') && ir === v.etag;
  const t = Date.parse(ir);
  return !Number.isNaN(t) && Math.floor(v.lastModified.getTime() / 1000) === Math.floor(t / 1000);
}
