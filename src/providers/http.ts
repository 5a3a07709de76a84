// `http` provider: a base URL on an internal HTTP(S) service. The URI's path below the
// match prefix is joined under the base path and can never climb out of it, and the host
// is always the configured one: the URI never selects where Keyhole connects.
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import { clientTls, duration, secret, text, httpUrl } from '../config/blocks.ts';
import { forwardedRequestHeaders } from '../http/data-head.ts';
import { createPool } from '../relay/pool.ts';
import { parseCidr, parseIp, refusal, type AddressPolicy, type Cidr } from '../relay/ssrf.ts';
import { InjectedSecrets } from '../relay/echo-guard.ts';
import { relay } from '../relay/relay.ts';
import { identityOf, providerBase } from './base.ts';
import type { DataRequest } from '../http/data-request.ts';
import type { Provider, UpstreamAnswer } from './types.ts';
import { encodeSegment } from '../uri.ts';

const httpAuth = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('basic'), username: text(), password: secret() }),
  z.strictObject({ type: z.literal('bearer'), token: secret() }),
  z.strictObject({ type: z.literal('header'), name: z.string().regex(/^[A-Za-z0-9-]+$/, 'must be a header name'), value: secret() }),
  z.strictObject({ type: z.literal('none') }),
]);

/** `true`, `false`, or a list of IP addresses / CIDR ranges, e.g. [10.0.0.0/8, fd00::/8]. */
const networkAllowance = z.unknown().transform((v, ctx): boolean | Cidr[] => {
  if (typeof v === 'boolean') return v;
  if (Array.isArray(v) && v.length > 0) {
    const ranges = v.map((item) => (typeof item === 'string' ? parseCidr(item.trim()) : undefined));
    if (ranges.every((r) => r !== undefined)) return ranges;
  }
  ctx.addIssue({ code: 'custom', message: 'must be true, false, or a list of IP addresses or CIDR ranges, e.g. [10.0.0.0/8, fd00::/8]' });
  return z.NEVER;
});

export const httpProviderSchema = providerBase.extend({
  kind: z.literal('http'),
  /** where the bytes really are: http(s)://host[:port]/base/path/ */
  baseUrl: text().pipe(httpUrl()),
  auth: httpAuth.default({ type: 'none' }),
  tls: clientTls().optional(),
  connections: z.number().int().min(1).max(1024).default(64),
  timeouts: z
    .strictObject({ connect: duration(5_000), headers: duration(15_000), body: duration(30_000) })
    .prefault({}),
  /**
   * SSRF guard. By default the upstream host may only resolve to public addresses:
   * loopback, private, link-local, CGNAT, unique-local and metadata addresses are refused
   * at connect time. `true` allows every non-public range except cloud metadata; a list of
   * CIDR ranges allows exactly those (metadata only when listed).
   */
  // The input's shape for the generated docs and JSON Schema (the transform takes unknown, to word its own error).
  allowPrivateNetworks: networkAllowance.default(false).meta({ anyOf: [{ type: 'boolean' }, { type: 'array', items: { type: 'string' }, minItems: 1 }] }),
}).superRefine((cfg, ctx) => {
  // An IP-literal base URL can be judged now: say so at check-config, not at the first request.
  const host = URL.parse(cfg.baseUrl)?.hostname; // unparsable: already reported by baseUrl's own check
  if (host === undefined || !parseIp(host)) return;
  const why = refusal(host.replace(/^\[|\]$/g, ''), addressPolicy(cfg.allowPrivateNetworks));
  if (why) ctx.addIssue({ code: 'custom', path: ['baseUrl'], message: `${why}: set allowPrivateNetworks: true (or list its range) to let this provider reach it` });
});
export type HttpProviderConfig = z.infer<typeof httpProviderSchema>;

export function addressPolicy(allow: HttpProviderConfig['allowPrivateNetworks']): AddressPolicy {
  return typeof allow === 'boolean' ? { allowPrivate: allow, allowed: [] } : { allowPrivate: false, allowed: allow };
}

/**
 * The request header fields that carry the provider's credential, and the secrets the relay
 * refuses to see in an answer (an upstream that echoes the request would hand them to the
 * browser). Built once per provider. The header name is lower-cased so that the client's
 * own copy (never forwarded anyway) cannot sit beside it.
 */
export function injectedCredential(auth: HttpProviderConfig['auth']): { headers: Record<string, string>; secrets: InjectedSecrets | undefined } {
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  // Header values go out as latin1 (undici); `user:password` is UTF-8 inside the base64.
  const forms: Buffer[] = [];
  if (auth.type === 'basic') {
    const password = auth.password.reveal();
    const userPassword = `${auth.username}:${password}`;
    const encoded = Buffer.from(userPassword).toString('base64');
    headers.authorization = `Basic ${encoded}`;
    forms.push(Buffer.from(headers.authorization, 'latin1'), Buffer.from(encoded, 'latin1'), Buffer.from(userPassword));
    // A short password alone would turn up in ordinary bytes: `user:password` stands for it.
    if (Buffer.byteLength(password) >= 8) forms.push(Buffer.from(password));
  } else if (auth.type === 'bearer') {
    const token = auth.token.reveal();
    headers.authorization = `Bearer ${token}`;
    forms.push(Buffer.from(headers.authorization, 'latin1'), Buffer.from(token, 'latin1'));
  } else if (auth.type === 'header') {
    const value = auth.value.reveal();
    headers[auth.name.toLowerCase()] = value;
    forms.push(Buffer.from(value, 'latin1'));
  }
  return { headers, secrets: InjectedSecrets.of(forms) };
}

export function createHttpProvider(cfg: HttpProviderConfig): Provider {
  const base = new URL(cfg.baseUrl);
  const basePath = base.pathname.endsWith('/') ? base.pathname : `${base.pathname}/`;
  const pool = createPool(base.origin, {
    connections: cfg.connections,
    connectTimeoutMs: cfg.timeouts.connect,
    headersTimeoutMs: cfg.timeouts.headers,
    bodyTimeoutMs: cfg.timeouts.body,
    tls: cfg.tls,
    addresses: addressPolicy(cfg.allowPrivateNetworks),
  });

  // The upstream path of a URI's segments: what Keyhole fetches, and what a data plane is told to.
  const pathOf = (rest: readonly string[]): string => basePath + rest.map(encodeSegment).join('/');
  const { headers: injected, secrets } = injectedCredential(cfg.auth);
  // Authorizer mode: the data plane sets Authorization only (a header of another name would need its own line in its config).
  const forDataPlane: UpstreamAnswer | undefined =
    cfg.auth.type === 'header' ? { refused: 'authorizer_unsupported', detail: `auth type header (${cfg.auth.name}): a data plane sets Authorization only` } : undefined;
  const dataPlaneHeaders: Record<string, string> = injected.authorization !== undefined ? { authorization: injected.authorization } : {};

  return {
    ...identityOf(cfg),
    serve(req: DataRequest, res: ServerResponse): void {
      relay(res, req, { dispatcher: pool, path: pathOf(req.rest), headers: forwardedRequestHeaders(req.headers, { ...injected }), secrets });
    },
    upstreamRequest(req): UpstreamAnswer {
      if (forDataPlane) return forDataPlane;
      return { url: base.origin + pathOf(req.rest), headers: { ...dataPlaneHeaders } };
    },
    close: () => pool.close(),
  };
}
