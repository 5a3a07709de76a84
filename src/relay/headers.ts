// Which headers cross Keyhole, in each direction. Everything not listed here is dropped:
// an upstream's Set-Cookie, Server, x-amz-* or Location never reaches the browser.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Client headers forwarded upstream: ranges and revalidation, nothing else. */
export const FORWARDED_REQUEST_HEADERS = ['range', 'if-range', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since'] as const;

/** Upstream headers passed back to the client. */
export const RELAYED_RESPONSE_HEADERS = ['content-type', 'content-length', 'content-range', 'accept-ranges', 'etag', 'last-modified', 'content-disposition'] as const;

/** Types a browser could execute or render as a document with script on our origin. */
const ACTIVE_CONTENT = /^\s*(text\/html|application\/xhtml|image\/svg|text\/xml|application\/xml|[a-z]+\/[a-z.+-]*\+xml|text\/xsl|application\/(x-)?javascript|text\/javascript|application\/pdf)/i;

export function isActiveContent(contentType: string | undefined): boolean {
  return contentType !== undefined && ACTIVE_CONTENT.test(contentType);
}

export function forwardedRequestHeaders(client: IncomingHttpHeaders, into: Record<string, string>): Record<string, string> {
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const v = client[name];
    if (typeof v === 'string') into[name] = v;
  }
  return into;
}

/** Security headers on every data response, whatever the provider. */
export function dataResponseHeaders(contentType: string | undefined, out: OutgoingHttpHeaders): OutgoingHttpHeaders {
  out['cache-control'] = 'private';
  out['x-content-type-options'] = 'nosniff';
  out['content-type'] = contentType ?? 'application/octet-stream';
  if (isActiveContent(contentType)) out['content-security-policy'] = "sandbox; default-src 'none'";
  return out;
}

export function relayedResponseHeaders(upstream: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name of RELAYED_RESPONSE_HEADERS) {
    const v = upstream[name];
    if (v === undefined) continue;
    // A repeated framing or type header is ambiguous: keep none rather than guess.
    if (Array.isArray(v)) continue;
    out[name] = v;
  }
  const ct = out['content-type'];
  return dataResponseHeaders(typeof ct === 'string' ? ct : undefined, out);
}
