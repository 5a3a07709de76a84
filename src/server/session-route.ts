// POST /v1/session turns a token the app gave the browser into the __Host- session
// cookie (Secure, HttpOnly, SameSite per config); DELETE /v1/session clears it.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { readJson, BodyError } from './body.ts';
import type { Reason } from '../reasons.ts';
import { refuse as refuseWith } from '../observe/refusal.ts';
import type { Runtime } from '../runtime.ts';
import { authenticate, claimedBy } from './authenticate.ts';

/**
 * A cross-site page must not plant or clear a session: Origin must be listed in cors, or be
 * Keyhole's own origin (`ownOrigin`: server.publicUrl, else a Host the certificate names,
 * never just whatever Host the request carries).
 */
function originAllowed(rt: Runtime, req: IncomingMessage, ownOrigin: (host: string | undefined) => string | undefined): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true; // not a browser cross-origin request
  if (rt.cors.allowed(origin)) return true;
  if (rt.config.server.insecurePlainHttp) {
    // Behind a mesh that terminates TLS: the public URL, when set, is the only own origin.
    const pub = rt.config.server.publicUrl;
    return pub !== undefined && origin === new URL(pub).origin;
  }
  const own = ownOrigin(req.headers.host?.replace(/:\d+$/, ''));
  return own !== undefined && origin === own;
}

export async function handleSession(rt: Runtime, req: IncomingMessage, res: ServerResponse, ownOrigin: (host: string | undefined) => string | undefined): Promise<void> {
  const id = randomUUID();
  res.setHeader('x-request-id', id);
  const refuse = (reason: Reason, fields?: Record<string, unknown>, extra?: Record<string, string>): void =>
    refuseWith(rt.logger, req, res, reason, id, { route: 'session', fields: { origin: req.headers.origin, ...fields } }, extra);
  const { name, sameSite } = rt.config.auth.cookie;
  if (req.method === 'OPTIONS') {
    if (!rt.cors.preflight(req, res, 'POST, DELETE, OPTIONS')) refuse('cors_origin');
    return;
  }
  rt.cors.decorate(req, res);
  if (req.method !== 'POST' && req.method !== 'DELETE') return refuse('method_not_allowed', undefined, { allow: 'POST, DELETE, OPTIONS' });
  if (!originAllowed(rt, req, ownOrigin)) return refuse('cors_origin');

  if (req.method === 'DELETE') {
    res.statusCode = 204;
    res.setHeader('set-cookie', `${name}=; Path=/; Secure; HttpOnly; SameSite=${sameSite}; Max-Age=0`);
    res.setHeader('cache-control', 'no-store');
    res.end();
    return;
  }

  // The token comes in Authorization: Bearer, or as {"token": "…"} in a JSON body.
  const headers = { ...req.headers, cookie: undefined };
  if (!headers.authorization && req.headers['content-type']) {
    try {
      const body = await readJson(req, 16 * 1024);
      const token = (body as { token?: unknown } | null)?.token;
      if (typeof token === 'string') headers.authorization = `Bearer ${token}`;
    } catch (err) {
      return refuse(err instanceof BodyError ? err.reason : 'bad_request');
    }
  }
  const auth = await authenticate(rt, headers, null);
  if (!auth.ok) return refuse(auth.reason, { ...claimedBy(auth), tokenSource: auth.source });
  const maxAge = Math.max(0, auth.claims.exp - Math.floor(Date.now() / 1000));
  res.statusCode = 204;
  res.setHeader('set-cookie', `${name}=${auth.token}; Path=/; Secure; HttpOnly; SameSite=${sameSite}; Max-Age=${maxAge}`);
  res.setHeader('cache-control', 'no-store');
  res.end();
}
