// YAML for the labeling app behind Keyhole: where it is, how its cookies are hardened,
// which peers may set X-Forwarded-*, body and time limits, and the per-path verb allowlist.
import { isIP } from 'node:net';
import { z } from 'zod';
import { clientTls, duration, text, urlHolds } from '../config/blocks.ts';

const METHOD = z.string().regex(/^[A-Z]{1,20}$/, 'an HTTP method in capitals, e.g. GET');

/** One address (10.0.0.7, ::1) or a CIDR block (10.0.0.0/8, fd00::/8). */
const addressOrBlock = z.string().refine((v) => {
  const [ip, bits, extra] = v.split('/');
  if (extra !== undefined || !ip || isIP(ip) === 0) return false;
  if (bits === undefined) return true;
  const max = isIP(ip) === 4 ? 32 : 128;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= max;
}, 'must be an IP address or a CIDR block like 10.0.0.0/8');

/** Methods never forwarded to the app, whatever app.methods lists. */
export const NEVER_FORWARDED: ReadonlySet<string> = new Set(['TRACE', 'CONNECT', 'TRACK']);

export const DEFAULT_APP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

export const appSchema = z.strictObject({
  /** the labeling app's origin, e.g. http://label-studio:8080 (path-less) */
  upstream: text().pipe(
    z.url({ protocol: /^https?$/ }).refine(
      (u) => urlHolds(u, (url) => (url.pathname === '/' || url.pathname === '') && !url.search && !url.hash && !url.username && !url.password),
      'must be an origin: scheme://host[:port], no path, query or credentials',
    ),
  ),
  /** TLS to the app: CA to trust, client certificate for mTLS */
  tls: clientTls().optional(),
  /** peers whose X-Forwarded-For/-Proto/-Host (and Forwarded) are kept; from anyone else they are replaced */
  trustedProxies: z.array(addressOrBlock).default([]),
  /** how Set-Cookie from the app is rewritten: Secure is always added */
  cookies: z
    .strictObject({
      /** add HttpOnly to every app cookie ... */
      httpOnly: z.boolean().default(true),
      /** ... except these, which the app's own script must read (Django's csrftoken) */
      scriptReadable: z.array(z.string().min(1)).default([]),
      /** SameSite forced on every app cookie */
      sameSite: z.enum(['Strict', 'Lax', 'None']).default('Lax'),
    })
    .prefault({}),
  /** largest request body forwarded, bytes; past it: 413, the app sees no more */
  maxBodyBytes: z.number().int().min(0).default(100 * 1024 * 1024),
  timeouts: z
    .strictObject({
      connect: duration(5_000),
      /** the app must start answering within this */
      headers: duration(60_000),
      /** longest silence between two body chunks of the app's answer */
      body: duration(300_000),
    })
    .prefault({}),
  /** most connections Keyhole opens to the app */
  connections: z.number().int().min(1).max(4096).default(128),
  /** pass websocket upgrades through */
  websockets: z.boolean().default(true),
  /** methods accepted on paths no rule below matches (TRACE and CONNECT are never forwarded) */
  defaultMethods: z.array(METHOD).min(1).default([...DEFAULT_APP_METHODS]),
  /** per-path verb allowlist: the longest matching path prefix decides */
  methods: z
    .array(
      z.strictObject({
        /** a path prefix; "/api/" covers /api/ and below; "/api/x" covers /api/x and /api/x/… */
        path: z.string().regex(/^\/[^?#\s]*$/, 'must be an absolute path without query or fragment'),
        allow: z.array(METHOD).min(1),
      }),
    )
    .default([]),
});

export type AppConfig = z.infer<typeof appSchema>;
