// Where a session token may come from, in order: Authorization: Bearer, the __Host-
// session cookie, the ?token= query parameter (media links that cannot send headers).
import type { IncomingHttpHeaders } from 'node:http';

export type TokenSource = 'header' | 'cookie' | 'query';

export interface Extracted {
  token: string;
  source: TokenSource;
}

/** A compact JWS is three base64url parts; anything else is not worth a verify. */
const MAX_TOKEN = 8192;

export function cookieValue(cookieHeader: string | undefined, name: string): string | undefined {
  if (!cookieHeader) return undefined;
  let at = 0;
  while (at < cookieHeader.length) {
    const semi = cookieHeader.indexOf(';', at);
    const end = semi === -1 ? cookieHeader.length : semi;
    const eq = cookieHeader.indexOf('=', at);
    if (eq !== -1 && eq < end && cookieHeader.slice(at, eq).trim() === name) return cookieHeader.slice(eq + 1, end).trim();
    at = end + 1;
  }
  return undefined;
}

export function extractToken(headers: IncomingHttpHeaders, queryToken: string | null, cookieName: string): Extracted | undefined {
  const auth = headers.authorization;
  if (auth !== undefined && auth.length > 7 && auth.slice(0, 7).toLowerCase() === 'bearer ') {
    return { token: auth.slice(7).trim().slice(0, MAX_TOKEN + 1), source: 'header' };
  }
  const cookie = cookieValue(headers.cookie, cookieName);
  if (cookie) return { token: cookie.slice(0, MAX_TOKEN + 1), source: 'cookie' };
  if (queryToken) return { token: queryToken.slice(0, MAX_TOKEN + 1), source: 'query' };
  return undefined;
}

export const MAX_TOKEN_LENGTH = MAX_TOKEN;
