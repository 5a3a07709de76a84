// For apps that cannot mint Keyhole tokens yet: a data request with no Keyhole token is
// authorized by asking the app who the user is, with the user's own credentials (the
// headers listed in auth.introspect.forward), e.g. Label Studio's /api/current-user/whoami.
// A 2xx answer means "a logged-in user"; such a session may read the providers YAML lists
// for it, with no per-URI scope: a weaker guarantee than a token, documented as such.
// Answers are cached briefly, keyed by a SHA-256 of the forwarded credentials (never the
// raw value); failures are not cached and fail closed.
// What introspection cannot see by itself, Keyhole adds: a session cookie logged out through
// its app front (auth.introspect.logout) is refused without asking, and the session's
// subject is checked against subject revocations like a token's (authenticate.ts).
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { Pool } from 'undici';
import { fullUndici } from '../relay/undici.ts';
import { z } from 'zod';
import { clientTls, duration, text } from '../config/blocks.ts';
import { createPool } from '../relay/pool.ts';

const HEADER_NAME = z
  .string()
  .regex(/^[A-Za-z0-9-]{1,64}$/, 'a header name, e.g. cookie or authorization')
  .transform((h) => h.toLowerCase());

/** A cookie name as RFC 6265 allows it (a token), e.g. Django's `sessionid`. */
const COOKIE_NAME = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_|~-]{1,128}$/, 'a cookie name, e.g. sessionid');

/** `14d` as `336h`: session lifetimes are counted in days. */
const days = (v: unknown): unknown => (typeof v === 'string' && /^\d+d$/.test(v) ? `${Number.parseInt(v, 10) * 24}h` : v);

const logoutSchema = z.strictObject({
  /** app paths (absolute prefixes) whose requests end the session, any method, e.g. /user/logout */
  paths: z.array(z.string().regex(/^\/[^\s?#]*$/, 'an absolute path such as /user/logout, without query')).min(1),
  /** the app's session cookie: its value, hashed, is what a logout marks dead */
  sessionCookie: COOKIE_NAME,
  /** how long a logged-out cookie is remembered (days too: 14d): the app's session lifetime (Django SESSION_COOKIE_AGE) */
  remember: z.preprocess(days, duration(14 * 86_400_000)).meta({ anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: '^\\d+(ms|s|m|h|d)$' }] }),
});

const introspectFields = z.strictObject({
  /** off: introspection is never asked (a migration step); providers may then be empty */
  enabled: z.boolean().default(true),
  /** the app endpoint that answers 2xx for a logged-in user, 401/403 otherwise */
  url: text().pipe(z.url({ protocol: /^https?$/ })),
  /** request headers carrying the user's app credentials, sent as they are */
  forward: z.array(HEADER_NAME).min(1).default(['cookie', 'authorization']),
  /** how long an answer (yes or no) is reused */
  cacheTtl: duration(30_000),
  /** most cached answers */
  cacheMax: z.number().int().min(1).max(1_000_000).default(10_000),
  timeout: duration(5_000),
  /** providers (by name) an introspected session may read; nothing else */
  providers: z.array(z.string().min(1)).default([]),
  /** field of the JSON answer used as the subject (audit events, subject revocation) */
  subjectField: z.string().min(1).default('id'),
  /** put before that field's value: the same string the app puts in its tokens' sub, so a subject revocation covers both */
  subjectPrefix: z.string().max(64).default(''),
  /** requests through the app front that end an app session: Keyhole stops honouring its cookie at once */
  logout: logoutSchema.optional(),
  tls: clientTls().optional(),
});

export const introspectSchema = introspectFields.superRefine((cfg, ctx) => {
  if (cfg.enabled && cfg.providers.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['providers'], message: 'list at least one provider, or set enabled: false' });
  }
});
export type IntrospectConfig = z.infer<typeof introspectSchema>;
export type LogoutConfig = NonNullable<IntrospectConfig['logout']>;

/**
 * A browser sends one value of a cookie (two when a path or domain differs): a request with
 * more is refused rather than looked up value by value.
 */
export const MAX_SESSION_VALUES = 16;

/** The app's session cookie as Keyhole reads it, for the logout marks. */
export interface SessionCookie {
  /** SHA-256 (hex) of every reading of every value: what the store keeps, never a value */
  hashes: string[];
  /** how many values were sent */
  values: number;
  /**
   * a value outside RFC 6265's cookie-octet (a backslash, a quote, a space, a non-ASCII
   * byte; a comma ends a pair, as for RFC 2965 parsers): apps' parsers read such a value differently (Python's unquotes `\c` and
   * `\ooo`, strips NEL), so its hash would not be the hash of what the app reads. No session
   * cookie an app issues looks like that: refused, not looked up.
   */
  unreadable: boolean;
}

/** Whitespace some app's parser strips around a name or value (Python's str.strip: NEL, \x1c-\x1f). */
// eslint-disable-next-line no-control-regex -- these control characters are the point: Python strips them
const LOOSE_SPACE = /^[\s\x85\x1c-\x1f]+|[\s\x85\x1c-\x1f]+$/g;
const NOT_COOKIE_OCTET = /[^\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]/;

/**
 * Every value of the app's session cookie in these headers, each read the ways apps read it:
 * as sent (quotes removed: Python, Go) and percent-decoded (Express, Rails, PHP decode values;
 * `+` as a space for the last two). Every value, not the first: apps differ on which duplicate
 * they read (Django takes the last). Pairs are split at `;` and at `,` (RFC 2965 parsers).
 */
export function sessionCookie(headers: IncomingHttpHeaders, name: string): SessionCookie {
  const out: SessionCookie = { hashes: [], values: 0, unreadable: false };
  const raw = headers.cookie;
  if (!raw) return out;
  for (const pair of raw.split(/[;,]/)) {
    const eq = pair.indexOf('=');
    if (eq === -1 || pair.slice(0, eq).replace(LOOSE_SPACE, '') !== name) continue;
    let value = pair.slice(eq + 1).replace(LOOSE_SPACE, '');
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (value === '') continue;
    // One past the limit is enough for the caller to tell "too many".
    if (++out.values > MAX_SESSION_VALUES) break;
    if (NOT_COOKIE_OCTET.test(value)) {
      out.unreadable = true;
      continue;
    }
    for (const reading of readings(value)) out.hashes.push(createHash('sha256').update(reading).digest('hex'));
  }
  return out;
}

function readings(value: string): Set<string> {
  const all = new Set([value]);
  for (const v of value.includes('+') ? [value, value.replaceAll('+', ' ')] : [value]) {
    if (!v.includes('%')) {
      all.add(v);
      continue;
    }
    try {
      all.add(decodeURIComponent(v));
    } catch {
      // not percent-encoded to any app that decodes: it reads the value as sent
    }
  }
  return all;
}

export type Introspection =
  | { ok: true; sub: string; providers: ReadonlySet<string>; expiresAt: number }
  | { ok: false; reason: 'token_missing' | 'introspect_denied' | 'introspect_unavailable' };

type Answer = { known: true; sub: string } | { known: false };

const MAX_ANSWER = 64 * 1024;

export class Introspector {
  private readonly cache: LRUCache<string, Answer>;
  private readonly pool: Pool;
  private readonly url: URL;
  private readonly providers: ReadonlySet<string>;
  private readonly inflight = new Map<string, Promise<Answer>>();
  /** counts calls that reached the app (tests and metrics) */
  asked = 0;

  /**
   * `ownCookie`: Keyhole's own session cookie (auth.cookie.name). It rides along in the Cookie
   * header the browser sends, but it is a Keyhole credential: it never goes to the app.
   */
  private readonly cfg: IntrospectConfig;
  private readonly ownCookie: string;
  constructor(
    cfg: IntrospectConfig,
    ownCookie: string,
  ) {
    this.cfg = cfg;
    this.ownCookie = ownCookie;
    this.url = new URL(cfg.url);
    this.providers = new Set(cfg.providers);
    this.cache = new LRUCache({ max: cfg.cacheMax, ttl: cfg.cacheTtl, ttlAutopurge: false });
    this.pool = createPool(this.url.origin, {
      connections: 16,
      connectTimeoutMs: cfg.timeout,
      headersTimeoutMs: cfg.timeout,
      bodyTimeoutMs: cfg.timeout,
      tls: cfg.tls,
    });
  }

  /** The forwarded credentials and their cache key; undefined when the request carries none. */
  private credentials(headers: IncomingHttpHeaders): { forwarded: Record<string, string>; key: string } | undefined {
    const forwarded: Record<string, string> = {};
    const hash = createHash('sha256');
    for (const name of this.cfg.forward) {
      const v = headers[name];
      const joined = Array.isArray(v) ? v.join(', ') : v;
      const value = name === 'cookie' && joined ? withoutCookie(joined, this.ownCookie) : joined;
      if (!value) continue;
      forwarded[name] = value;
      hash.update(name).update('\0').update(value).update('\0');
    }
    if (Object.keys(forwarded).length === 0) return undefined;
    return { forwarded, key: hash.digest('base64url') };
  }

  /** Drops the cached answer for these credentials (a logout): the next request asks again. */
  forget(headers: IncomingHttpHeaders): void {
    const found = this.credentials(headers);
    if (found) this.cache.delete(found.key);
  }

  async check(headers: IncomingHttpHeaders): Promise<Introspection> {
    const found = this.credentials(headers);
    if (!found) return { ok: false, reason: 'token_missing' };
    const { forwarded, key } = found;
    let answer = this.cache.get(key);
    if (!answer) {
      // Many media requests of one page arrive at once: one question to the app for all.
      let pending = this.inflight.get(key);
      if (!pending) {
        pending = this.ask(forwarded).finally(() => this.inflight.delete(key));
        this.inflight.set(key, pending);
      }
      try {
        answer = await pending;
      } catch {
        return { ok: false, reason: 'introspect_unavailable' };
      }
      this.cache.set(key, answer);
    }
    if (!answer.known) return { ok: false, reason: 'introspect_denied' };
    return { ok: true, sub: answer.sub, providers: this.providers, expiresAt: Date.now() + this.cfg.cacheTtl };
  }

  private async ask(forwarded: Record<string, string>): Promise<Answer> {
    this.asked++;
    const res = await fullUndici().request(this.url, {
      dispatcher: this.pool,
      method: 'GET',
      headers: { ...forwarded, accept: 'application/json' },
    });
    const status = res.statusCode;
    if (status >= 500) {
      await res.body.dump();
      throw new Error(`introspection answered ${status}`);
    }
    if (status < 200 || status >= 300) {
      // 3xx (a login redirect), 401, 403, 404: not a logged-in user.
      await res.body.dump();
      return { known: false };
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_ANSWER) {
        res.body.destroy();
        break;
      }
      chunks.push(chunk as Buffer);
    }
    return { known: true, sub: this.subjectOf(Buffer.concat(chunks)) };
  }

  private subjectOf(body: Buffer): string {
    try {
      const parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      const v = parsed[this.cfg.subjectField];
      if ((typeof v === 'string' && v !== '') || typeof v === 'number') return `${this.cfg.subjectPrefix}${String(v).slice(0, 256)}`;
    } catch {
      // not JSON: the user is known, only unnamed
    }
    return `${this.cfg.subjectPrefix}unknown`;
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

/** The Cookie header without the cookie `name` (every copy of it); '' when nothing else is left. */
function withoutCookie(header: string, name: string): string {
  if (!header.includes(name)) return header;
  return header
    .split(';')
    .filter((pair) => {
      const eq = pair.indexOf('=');
      return (eq === -1 ? pair : pair.slice(0, eq)).trim() !== name;
    })
    .join(';')
    .trim();
}
