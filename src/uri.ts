// Parses and canonicalises data URIs. Everything downstream (provider matching, scope
// checks, upstream paths) works on the canonical form produced here, so an encoding
// trick that survives this module would survive everywhere: be strict.
import { LRUCache } from 'lru-cache';
import { ReasonError } from './reasons.ts';

export interface DataUri {
  /** lower-case scheme without ':' (s3, gs, https, local …) */
  readonly scheme: string;
  /** lower-case authority (bucket, host[:port], container); '' for scheme:/path */
  readonly authority: string;
  /** decoded path segments, none empty, none '.' or '..' */
  readonly segments: readonly string[];
  /** canonical string: scheme://authority/enc(seg)/enc(seg)… */
  readonly canonical: string;
}

/** A URI refused by the grammar, with the uri_* reason. */
export class UriError extends ReasonError {}

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//;
// Control characters (C0, DEL, C1), backslash. Checked on the raw and on every decoded segment.
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\\]/;
const AUTHORITY = /^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(:[0-9]{1,5})?$/;
const ENCODED_TRIPLET = /%[0-9a-fA-F]{2}/;

const UNRESERVED = /^[A-Za-z0-9._~-]*$/;

/** Encodes one segment so that it round-trips through any RFC 3986 decoder. */
export function encodeSegment(segment: string): string {
  // Most object names need no encoding at all: skip building a copy.
  if (UNRESERVED.test(segment)) return segment;
  return encodeURIComponent(segment).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/**
 * Annotators fetch the same URIs again and again: successful parses are kept (results are
 * immutable), refusals are not. Bounded, so hostile input cannot grow it.
 */
const parsedCache = new LRUCache<string, DataUri>({ max: 4096 });

export function parseDataUri(raw: string, maxLength = 2048): DataUri {
  if (raw.length > maxLength) throw new UriError('uri_too_long', `URI longer than ${maxLength} characters`);
  const hit = parsedCache.get(raw);
  if (hit !== undefined) return hit;
  const uri = parseUncached(raw, maxLength);
  parsedCache.set(raw, uri);
  return uri;
}

function parseUncached(raw: string, maxLength: number): DataUri {
  if (raw.length === 0) throw new UriError('uri_missing', 'empty URI');
  if (raw.length > maxLength) throw new UriError('uri_too_long', `URI longer than ${maxLength} characters`);
  if (FORBIDDEN.test(raw)) throw new UriError('uri_forbidden_char', 'control character or backslash in URI');
  const m = SCHEME.exec(raw);
  if (!m) throw new UriError('uri_invalid', 'URI must be absolute: scheme://…');
  const scheme = m[1]!.toLowerCase();
  const rest = raw.slice(m[0].length);
  if (/[?#]/.test(rest)) throw new UriError('uri_query', 'query and fragment are not accepted in data URIs');
  const slash = rest.indexOf('/');
  const rawAuthority = slash === -1 ? rest : rest.slice(0, slash);
  if (rawAuthority.includes('@')) throw new UriError('uri_userinfo', 'user information in URI');
  if (rawAuthority.includes('%')) throw new UriError('uri_invalid', 'percent-encoding in the URI authority');
  const authority = rawAuthority.toLowerCase();
  if (authority !== '' && !AUTHORITY.test(authority)) throw new UriError('uri_invalid', 'malformed URI authority');
  const rawPath = slash === -1 ? '' : rest.slice(slash + 1);
  const segments: string[] = [];
  if (rawPath !== '') {
    const parts = rawPath.split('/');
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (part === '') {
        // A single trailing slash names a "directory" prefix; anything else is ambiguous.
        if (i === parts.length - 1) break;
        throw new UriError('uri_empty_segment', 'empty path segment');
      }
      let seg: string;
      try {
        seg = decodeURIComponent(part);
      } catch {
        throw new UriError('uri_invalid', 'malformed percent-encoding');
      }
      if (seg === '.' || seg === '..') throw new UriError('uri_traversal', 'dot segment in URI path');
      if (seg.includes('/')) throw new UriError('uri_traversal', 'encoded slash in URI path');
      if (FORBIDDEN.test(seg)) throw new UriError('uri_forbidden_char', 'encoded control character or backslash');
      if (ENCODED_TRIPLET.test(seg)) throw new UriError('uri_double_encoded', 'percent-encoded twice');
      segments.push(seg);
    }
  }
  const trailing = rawPath.endsWith('/') ? '/' : '';
  const path = segments.map(encodeSegment).join('/');
  const canonical = `${scheme}://${authority}/${path}${segments.length > 0 ? trailing : ''}`;
  return Object.freeze({ scheme, authority, segments: Object.freeze(segments), canonical });
}

/**
 * True when `prefix` owns `uri` on a segment boundary: `s3://b/img` owns `s3://b/img`
 * and `s3://b/img/a.jpg`, never `s3://b/img-private/a.jpg`. Both must be canonical.
 */
export function ownsUri(prefix: string, uri: string): boolean {
  if (!uri.startsWith(prefix)) return false;
  if (uri.length === prefix.length || prefix.endsWith('/')) return true;
  return uri.charCodeAt(prefix.length) === 47; /* '/' */
}

/** Canonicalises a configured prefix (provider match, token scope); throws UriError when malformed. */
export function canonicalPrefix(prefix: string): string {
  return parseDataUri(prefix).canonical;
}
