// `http` provider: a base URL on an internal HTTP(S) service. The URI's path below the
// match prefix is joined under the base path and can never climb out of it, and the host
// is always the configured one: the URI never selects where Keyhole connects.
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import { clientTls, duration, secret, text } from '../config/types.js';
import { forwardedRequestHeaders } from '../relay/headers.js';
import { createPool } from '../relay/pool.js';
import { relay } from '../relay/relay.js';
import { providerBase } from './base.js';
import type { DataRequest, Provider } from './types.js';
import { encodeSegment } from './uri.js';

const httpAuth = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('basic'), username: text(), password: secret() }),
  z.strictObject({ type: z.literal('bearer'), token: secret() }),
  z.strictObject({ type: z.literal('header'), name: z.string().regex(/^[A-Za-z0-9-]+$/, 'must be a header name'), value: secret() }),
  z.strictObject({ type: z.literal('none') }),
]);

export const httpProviderSchema = providerBase.extend({
  kind: z.literal('http'),
  /** where the bytes really are: http(s)://host[:port]/base/path/ */
  baseUrl: text().pipe(z.url({ protocol: /^https?$/, message: 'must be an http:// or https:// URL' })),
  auth: httpAuth.default({ type: 'none' }),
  tls: clientTls().optional(),
  connections: z.number().int().min(1).max(1024).default(64),
  timeouts: z
    .strictObject({ connect: duration(5_000), headers: duration(15_000), body: duration(30_000) })
    .prefault({}),
});
export type HttpProviderConfig = z.infer<typeof httpProviderSchema>;

export function createHttpProvider(cfg: HttpProviderConfig): Provider {
  const base = new URL(cfg.baseUrl);
  const basePath = base.pathname.endsWith('/') ? base.pathname : `${base.pathname}/`;
  const pool = createPool(base.origin, {
    connections: cfg.connections,
    connectTimeoutMs: cfg.timeouts.connect,
    headersTimeoutMs: cfg.timeouts.headers,
    bodyTimeoutMs: cfg.timeouts.body,
    tls: cfg.tls,
  });

  // The credential header is computed once; the name is lower-cased so that the
  // client's own copy (never forwarded anyway) cannot sit beside it.
  const injected: Record<string, string> = { 'accept-encoding': 'identity' };
  const auth = cfg.auth;
  if (auth.type === 'basic') injected.authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password.reveal()}`).toString('base64')}`;
  else if (auth.type === 'bearer') injected.authorization = `Bearer ${auth.token.reveal()}`;
  else if (auth.type === 'header') injected[auth.name.toLowerCase()] = auth.value.reveal();

  return {
    name: cfg.name,
    kind: 'http',
    match: cfg.match,
    orgs: cfg.orgs,
    projects: cfg.projects,
    serve(req: DataRequest, res: ServerResponse): Promise<void> {
      const path = basePath + req.rest.map(encodeSegment).join('/');
      return relay(res, {
        dispatcher: pool,
        method: req.method,
        path,
        headers: forwardedRequestHeaders(req.headers, { ...injected }),
        requestId: req.id,
        outcome: req.outcome,
      });
    },
    close: () => pool.close(),
  };
}
