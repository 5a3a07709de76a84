// For apps that cannot mint Keyhole tokens yet: a data request with no Keyhole token is
// authorized by asking the app who the user is, with the user's own credentials (the
// headers listed in auth.introspect.forward), e.g. Label Studio's /api/current-user/whoami.
// A 2xx answer means "a logged-in user"; such a session may read the providers YAML lists
// for it, with no per-URI scope: a weaker guarantee than a token, documented as such.
// Answers are cached briefly, keyed by a SHA-256 of the forwarded credentials (never the
// raw value); failures are not cached and fail closed.
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { Pool } from 'undici';
import { fullUndici } from '../relay/undici.js';
import { z } from 'zod';
import { clientTls, duration, text } from '../config/types.js';
import type { Provider } from '../providers/types.js';
import { createPool } from '../relay/pool.js';

const HEADER_NAME = z
  .string()
  .regex(/^[A-Za-z0-9-]{1,64}$/, 'a header name, e.g. cookie or authorization')
  .transform((h) => h.toLowerCase());

export const introspectSchema = z.strictObject({
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
  providers: z.array(z.string().min(1)).min(1),
  /** field of the JSON answer used as the subject in audit events */
  subjectField: z.string().min(1).default('id'),
  tls: clientTls().optional(),
});
export type IntrospectConfig = z.infer<typeof introspectSchema>;

export type Introspection =
  | { ok: true; sub: string; providers: ReadonlySet<string>; expiresAt: number }
  | { ok: false; status: 401 | 503; reason: 'token_missing' | 'introspect_denied' | 'introspect_unavailable' };

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

  constructor(private readonly cfg: IntrospectConfig) {
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

  async check(headers: IncomingHttpHeaders): Promise<Introspection> {
    const forwarded: Record<string, string> = {};
    const hash = createHash('sha256');
    for (const name of this.cfg.forward) {
      const v = headers[name];
      const value = Array.isArray(v) ? v.join(', ') : v;
      if (!value) continue;
      forwarded[name] = value;
      hash.update(name).update('\0').update(value).update('\0');
    }
    if (Object.keys(forwarded).length === 0) return { ok: false, status: 401, reason: 'token_missing' };
    const key = hash.digest('base64url');
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
        return { ok: false, status: 503, reason: 'introspect_unavailable' };
      }
      this.cache.set(key, answer);
    }
    if (!answer.known) return { ok: false, status: 401, reason: 'introspect_denied' };
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
      if ((typeof v === 'string' && v !== '') || typeof v === 'number') return `app:${String(v).slice(0, 256)}`;
    } catch {
      // not JSON: the user is known, only unnamed
    }
    return 'app:unknown';
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

/**
 * An introspected session may read a provider only when YAML lists it for such sessions,
 * and never one restricted to orgs or projects: it has no org or project claim to show.
 */
export function authorizeIntrospected(allowed: ReadonlySet<string>, provider: Pick<Provider, 'name' | 'orgs' | 'projects'>): 'introspect_provider' | undefined {
  if (!allowed.has(provider.name) || provider.orgs !== undefined || provider.projects !== undefined) return 'introspect_provider';
  return undefined;
}

const introspectors = new WeakMap<IntrospectConfig, Introspector>();

/** One Introspector per loaded config (a reload builds a new one). */
export function introspectorFor(cfg: IntrospectConfig): Introspector {
  let found = introspectors.get(cfg);
  if (!found) {
    found = new Introspector(cfg);
    introspectors.set(cfg, found);
  }
  return found;
}

export async function closeIntrospector(cfg: IntrospectConfig | undefined): Promise<void> {
  const found = cfg && introspectors.get(cfg);
  if (found) {
    introspectors.delete(cfg);
    await found.close();
  }
}
