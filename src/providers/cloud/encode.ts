// RFC 3986 strict percent-encoding, as SigV4, GOOG4 and the URL itself need it: every
// byte but A-Z a-z 0-9 - . _ ~ is encoded; object keys keep their '/'.
import { encodeSegment } from '../../uri.ts';

export const encodeRfc3986 = encodeSegment;

const PLAIN_KEY = /^[A-Za-z0-9._~/-]*$/;

/** An object key as a URL path: each '/'-separated part encoded, the slashes kept. */
export function encodeKey(key: string): string {
  if (PLAIN_KEY.test(key)) return key; // the common case: nothing to encode
  return key.split('/').map(encodeSegment).join('/');
}

/** `k=v&k=v` with keys sorted by their encoded form (the canonical query of SigV4/GOOG4). */
export function canonicalQuery(params: Record<string, string>, omit?: string): string {
  return Object.keys(params)
    .filter((k) => k !== omit)
    .map((k) => [encodeSegment(k), encodeSegment(params[k]!)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}
