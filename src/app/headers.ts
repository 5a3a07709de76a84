// Headers across the app proxy. Hop-by-hop headers (RFC 9110 §7.6.1), and every header a
// Connection header names, stop at Keyhole in both directions. X-Forwarded-For/-Proto/-Host
// say who the client is; they are trusted only from configured proxies. Headers that claim
// the client's address, scheme, identity, method or original URL never pass (spoofable()).
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { cookieValue } from '../auth/extract.ts';
import type { CookieHardener } from './cookies.ts';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** Client headers Keyhole consumes or rewrites itself. */
const REQUEST_DROPPED = new Set(['expect', 'content-length']);
/** Who the client is and how it came: believed only from a trusted proxy, set by Keyhole otherwise. */
const FORWARDING = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'forwarded', 'x-real-ip']);
/**
 * Headers that frameworks, CDNs and middleboxes read as the client's address, the request's
 * scheme, host or prefix, the user an authenticating proxy vouched for, its "real" method or
 * its "original" URL: a client sends them to step around the app's own checks (an IP
 * allowlist, a method rule, a path rule, a login). No browser sets them, so they never reach
 * the app, whoever sends them.
 */
const CLIENT_SPOOFABLE = new Set([
  // the client's address
  'x-client-ip',
  'client-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'cf-pseudo-ipv4',
  'fastly-client-ip',
  'x-cluster-client-ip',
  'x-original-forwarded-for',
  'forwarded-for',
  'x-originating-ip',
  'x-proxyuser-ip',
  'x-appengine-user-ip',
  'x-azure-clientip',
  'x-azure-socketip',
  'proxy-client-ip',
  'wl-proxy-client-ip',
  'fly-client-ip',
  'x-real-client-ip',
  'x-original-remote-addr',
  'x-custom-ip-authorization',
  // the scheme, host or mount point
  'cf-visitor',
  'front-end-https',
  'x-url-scheme',
  'x-scheme',
  'x-host',
  'x-original-host',
  'x-http-host-override',
  'x-script-name',
  // the user or client certificate an authenticating proxy vouched for
  'x-webauth-user',
  'x-authenticated-user',
  'x-authenticated-groups',
  'x-auth-user',
  'x-user',
  'x-email',
  'x-client-cert',
  'x-client-verify',
  'x-arr-clientcert',
  // the method or URL
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-original-method',
  'x-original-url',
  'x-original-uri',
  'x-rewrite-url',
  // a framework's own internal marks (Next.js: CVE-2025-29927, CVE-2024-46982)
  'x-middleware-subrequest',
  'x-now-route-matches',
]);
/**
 * Whole families: every X-Forwarded* but the ones Keyhole sets, Envoy's control headers (a
 * mesh sidecar before the app obeys them), and the identity headers of authenticating
 * proxies: ALB, IAP, App Service, oauth2-proxy, Authelia (Remote-*), authentik, Cloudflare
 * Access, Tailscale, Pomerium, and TLS-terminating proxies' client-certificate headers.
 */
const SPOOFABLE_FAMILY =
  /^(?:x-forwarded|x-envoy-|x-amzn-oidc-|x-goog-authenticated-user-|x-goog-iap-|x-ms-client-principal|x-ms-token-|x-auth-request-|x-ssl-client-|ssl-client-|remote-|x-remote-|x-authentik-|cf-access-|tailscale-|x-pomerium-)/;

/**
 * A name with more than letters, digits and `-`: a CGI-style gateway (gunicorn, uWSGI,
 * mod_wsgi, PHP-FPM) maps `_` onto `-` (HTTP_X_FORWARDED_FOR either way; gunicorn 20 even
 * takes a `SCRIPT_NAME` header as the mount point), so such a name can stand for any header
 * above. nginx and Apache httpd drop them by default; so does Keyhole.
 */
function foldableName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45)) return true;
  }
  return false;
}

/** A client header the app must never get as the client sent it (names arrive lower-cased). */
function spoofable(name: string, trusted: boolean): boolean {
  if (FORWARDING.has(name)) return !trusted;
  if (CLIENT_SPOOFABLE.has(name) || foldableName(name)) return true;
  return SPOOFABLE_FAMILY.test(name);
}

/** Names listed in Connection: (`Connection: close, X-Secret`) are hop-by-hop too. */
export function connectionNamed(value: string | string[] | undefined): Set<string> {
  const out = new Set<string>();
  for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) {
    for (const token of v.split(',')) {
      const name = token.trim().toLowerCase();
      if (name) out.add(name);
    }
  }
  return out;
}

export class TrustedProxies {
  private readonly list = new BlockList();
  private readonly empty: boolean;

  constructor(entries: readonly string[]) {
    this.empty = entries.length === 0;
    for (const e of entries) {
      const [ip, bits] = e.split('/') as [string, string | undefined];
      const type = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.list.addAddress(ip, type);
      else this.list.addSubnet(ip, Number(bits), type);
    }
  }

  has(address: string | undefined): boolean {
    if (this.empty || !address) return false;
    const plain = unmapped(address);
    return this.list.check(plain, isIP(plain) === 6 ? 'ipv6' : 'ipv4');
  }
}

/** ::ffff:10.0.0.1 (an IPv4 peer on a dual-stack socket) → 10.0.0.1 */
export function unmapped(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

export interface ForwardContext {
  peer: string | undefined;
  trusted: boolean;
  proto: 'https' | 'http';
  /** Keyhole's session cookie: a data credential the app never needs to see */
  sessionCookie: string;
  /** server.publicUrl's host[:port]: when set, the only Host the app is told about */
  publicHost: string | undefined;
}

function withoutCookie(header: string, name: string): string | undefined {
  if (cookieValue(header, name) === undefined) return header;
  const kept = header
    .split(';')
    .map((c) => c.trim())
    .filter((c) => c !== '' && c.slice(0, c.indexOf('=') === -1 ? c.length : c.indexOf('=')).trim() !== name);
  return kept.length > 0 ? kept.join('; ') : undefined;
}

/** The headers sent to the app for one client request (no framing headers: see proxy). */
export function appRequestHeaders(client: IncomingHttpHeaders, ctx: ForwardContext): Record<string, string | string[]> {
  const named = connectionNamed(client.connection);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(client)) {
    if (value === undefined || HOP_BY_HOP.has(name) || REQUEST_DROPPED.has(name) || (named.has(name) && name !== 'host')) continue;
    if (spoofable(name, ctx.trusted)) continue;
    out[name] = value;
  }
  // The client picks Host freely (TLS names one host, the head may name another): an app
  // that builds links from it (password-reset mail) must get the operator's host instead.
  const host = ctx.publicHost ?? client.host;
  if (ctx.publicHost) out.host = ctx.publicHost;
  if (typeof out.cookie === 'string') {
    const cookie = withoutCookie(out.cookie, ctx.sessionCookie);
    if (cookie === undefined) delete out.cookie;
    else out.cookie = cookie;
  }
  const peer = ctx.peer ? unmapped(ctx.peer) : undefined;
  const priorFor = ctx.trusted ? joined(client['x-forwarded-for']) : undefined;
  if (peer) out['x-forwarded-for'] = priorFor ? `${priorFor}, ${peer}` : peer;
  else if (priorFor) out['x-forwarded-for'] = priorFor;
  if (!(ctx.trusted && client['x-forwarded-proto'])) out['x-forwarded-proto'] = ctx.proto;
  if (!(ctx.trusted && client['x-forwarded-host']) && host) out['x-forwarded-host'] = host;
  return out;
}

function joined(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

/** The app's response headers as the browser gets them. */
export function appResponseHeaders(upstream: IncomingHttpHeaders, cookies: CookieHardener, upgrade = false): OutgoingHttpHeaders {
  const named = connectionNamed(upstream.connection);
  const out: OutgoingHttpHeaders = {};
  // First: Node's writeHead re-reads a Content-Disposition that follows a Content-Length as
  // UTF-8 (nodejs/node#46528) and so mangles a filename sent as UTF-8 bytes; before it, the
  // value goes out as the bytes the app sent (as on the data route, http/data-head.ts).
  if (upstream['content-disposition'] !== undefined && !named.has('content-disposition')) out['content-disposition'] = upstream['content-disposition'];
  for (const [name, value] of Object.entries(upstream)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    // Keyhole's own HSTS is the one that counts for this origin.
    if (name === 'strict-transport-security' || name === 'set-cookie') continue;
    out[name] = value;
  }
  const setCookie = cookies.hardenAll(upstream['set-cookie']);
  if (setCookie.length > 0) out['set-cookie'] = setCookie;
  if (upgrade) {
    out.connection = 'Upgrade';
    out.upgrade = 'websocket';
  }
  return out;
}
