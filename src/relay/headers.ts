// Which headers cross Keyhole, in each direction. Everything not listed here is dropped:
// an upstream's Set-Cookie, Server, x-amz-* or Location never reaches the browser.
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';

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

/** Security headers on every data response, whatever the provider, as flat [name, value, …]. */
const PASSIVE_FIELDS = Object.freeze(['cache-control', 'private', 'x-content-type-options', 'nosniff']);
const ACTIVE_FIELDS = Object.freeze([...PASSIVE_FIELDS, 'content-security-policy', "sandbox; default-src 'none'"]);

/** The security header fields for a body of `contentType` (without the type itself). */
function securityFields(contentType: string | undefined): readonly string[] {
  return isActiveContent(contentType) ? ACTIVE_FIELDS : PASSIVE_FIELDS;
}

/** Security headers on every data response, and the content type (octet-stream when unknown). */
export function dataResponseHeaders(contentType: string | undefined, out: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const fields = securityFields(contentType);
  for (let i = 0; i < fields.length; i += 2) out[fields[i]!] = fields[i + 1]!;
  out['content-type'] = contentType ?? 'application/octet-stream';
  return out;
}

/**
 * The relayed answer's header fields in one flat list: `head` (the request's own fields),
 * then the allowlisted upstream headers and the security headers of every data answer.
 * A 304 carries no Content-Type: its headers update the browser's stored response.
 */
export function relayedResponseFields(upstream: IncomingHttpHeaders, head: readonly string[], status: number): string[] {
  const out = head.slice();
  let contentType: string | undefined;
  for (const name of RELAYED_RESPONSE_HEADERS) {
    const v = upstream[name];
    // absent, or repeated: a repeated framing or type header is ambiguous, keep none
    if (typeof v !== 'string') continue;
    if (name === 'content-type') contentType = v;
    else out.push(name, v);
  }
  out.push(...securityFields(contentType));
  if (status !== 304) out.push('content-type', contentType ?? 'application/octet-stream');
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
