// `redis` provider: blobs stored as Redis string values, named by `redis://[db]/key`.
//
// The URI's authority is the database number (`redis://3/images/cat.jpg` → db 3, key
// `images/cat.jpg`); an empty authority (`redis:///images/cat.jpg`) means the connection's
// own database. The key is the URI path (decoded segments joined by '/'), case kept — the
// authority is lower-cased by URI canonicalisation, so it never holds key text.
//
// A value is never loaded whole: TYPE + STRLEN first, then GETRANGE in `chunkSize` pieces,
// one chunk ahead of the client (backpressure via the stream). Range requests read only
// their bytes. A value that changes length mid-stream cuts the response (never mixes two
// versions silently). Content type: the companion key (`contentTypeKey`), else the
// configured `contentType`, else by the key's extension.
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { Readable, pipeline } from 'node:stream';
import { z } from 'zod';
import { dataResponseHeaders, writeRangedHead } from '../http/data-head.ts';
import { parseRange } from '../http/range.ts';
import { refuseData } from '../http/answer.ts';
import { redisConnectionSchema } from '../redis/schema.ts';
import { createRedisClient, explainRedisError, preflightRedis, type RedisClient } from '../redis/connect.ts';
import { identityOf, providerBase } from './base.ts';
import { contentTypeFor } from './content-type.ts';
import type { DataRequest } from '../http/data-request.ts';
import type { Provider } from './types.ts';

const MEDIA_TYPE = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+(\s*;\s*[a-z0-9_-]+=("[^"\r\n]*"|[a-z0-9_.-]+))*$/i;

export const redisProviderSchema = providerBase
  .extend({
    kind: z.literal('redis'),
    /** where the blobs are: same shape (url | sentinel | cluster, tls …) as the top-level redis section */
    redis: redisConnectionSchema,
    /** bytes per GETRANGE round trip */
    chunkSize: z.number().int().min(1024).max(16 * 1024 * 1024).default(256 * 1024),
    /** content type for every value of this provider */
    contentType: z.string().regex(MEDIA_TYPE, 'must be a media type like image/png').optional(),
    /** companion key holding each value's content type; `{key}` is replaced by the value's key */
    contentTypeKey: z.string().includes('{key}', { message: 'must contain {key}' }).optional(),
  })
  .refine((p) => /^redis:\/\/(\d{1,3})?\//.test(p.match), { message: 'a redis provider matches redis://DB/… or redis:///… (the authority is a database number)', path: ['match'] });
export type RedisProviderConfig = z.infer<typeof redisProviderSchema>;

class ValueChanged extends Error {}

/**
 * Start-up check for every redis provider, like the shared-state connection gets: a TLS or
 * certificate problem refuses start-up (RedisSetupError); a Redis that is down only warns.
 */
export async function preflightRedisProviders(providers: readonly { kind: string }[], logger: Logger): Promise<void> {
  await Promise.all(
    providers.map(async (p, i) => {
      if (p.kind !== 'redis') return;
      const cfg = p as RedisProviderConfig;
      const { unreachable } = await preflightRedis(cfg.redis, `providers[${i}] (${cfg.name})`);
      if (unreachable.length > 0) logger.warn({ provider: cfg.name, unreachable }, 'redis provider unreachable at start-up: its requests fail until it answers');
    }),
  );
}

export function createRedisProvider(cfg: RedisProviderConfig): Provider {
  const clients = new Map<number, RedisClient>();
  const defaultDb = cfg.redis.db ?? (cfg.redis.url !== undefined && new URL(cfg.redis.url).pathname.length > 1 ? Number(new URL(cfg.redis.url).pathname.slice(1)) : 0);
  let lastProblem: string | undefined;

  function clientFor(db: number): RedisClient {
    let c = clients.get(db);
    if (!c) {
      // Offline queue on: a request arriving during a reconnect waits (bounded by commandTimeout).
      c = createRedisClient(cfg.redis, { name: `keyhole-provider-${cfg.name}`, db, offlineQueue: true });
      c.on('error', (err: unknown) => {
        lastProblem = explainRedisError(err);
      });
      clients.set(db, c);
    }
    return c;
  }

  async function serve(req: DataRequest, res: ServerResponse): Promise<void> {
    const { outcome } = req;
    const fail = (status: number, reason: 'not_found' | 'uri_invalid' | 'upstream_error' | 'upstream_timeout', detail?: string) => {
      outcome.reason = reason;
      if (detail) outcome.detail = detail;
      refuseData(res, req, reason);
    };
    const authority = req.uri.authority;
    if (authority !== '' && !/^\d{1,3}$/.test(authority)) return fail(400, 'uri_invalid', 'the authority of a redis:// URI is a database number');
    const db = authority === '' ? defaultDb : Number(authority);
    if (cfg.redis.cluster && db !== 0) return fail(404, 'not_found', 'a cluster only has database 0');
    const key = req.uri.segments.join('/');
    if (key === '') return fail(404, 'not_found');
    const client = clientFor(db);
    const typeKey = cfg.contentTypeKey?.replaceAll('{key}', key);

    let type: string;
    let size: number;
    let storedType: string | null;
    try {
      const [t, s, ct] = await Promise.all([
        client.type(key),
        client.strlen(key).catch(() => -1), // WRONGTYPE: reported through TYPE below
        typeKey !== undefined ? client.get(typeKey) : Promise.resolve(null),
      ]);
      type = t;
      size = s;
      storedType = ct;
    } catch (err) {
      const why = explainRedisError(err);
      return /timed out/i.test(why) ? fail(504, 'upstream_timeout', `redis: ${why}`) : fail(502, 'upstream_error', `redis: ${why}${lastProblem && lastProblem !== why ? `; ${lastProblem}` : ''}`);
    }
    if (type === 'none') return fail(404, 'not_found');
    if (type !== 'string' || size < 0) return fail(404, 'not_found', `the key holds a ${type}, not a string value`);

    const contentType = (storedType !== null && MEDIA_TYPE.test(storedType) ? storedType : undefined) ?? cfg.contentType ?? contentTypeFor(key);
    const headers = dataResponseHeaders(contentType, { 'accept-ranges': 'bytes' });
    // No validators (Redis keeps no version): an If-Range can never be confirmed, so it gets the whole value.
    const range = req.headers['if-range'] !== undefined ? ({ kind: 'full' } as const) : parseRange(req.headers.range, size);
    const span = writeRangedHead(res, req, headers, range, size);
    if (span === undefined) return;
    const { start, end } = span;

    const chunkSize = cfg.chunkSize;
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let pos = start; pos <= end; pos += chunkSize) {
        const last = Math.min(pos + chunkSize - 1, end);
        const buf = await client.getrangeBuffer(key, pos, last);
        if (buf.length !== last - pos + 1) throw new ValueChanged('the value changed length while it was streamed');
        outcome.bytes += buf.length;
        yield buf;
      }
    }
    const body = Readable.from(chunks(), { objectMode: false, highWaterMark: chunkSize });
    await new Promise<void>((resolve) => {
      pipeline(body, res, (err) => {
        // A client that left is not an upstream failure; a Redis error or a changed value is.
        if (err && (err as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') {
          outcome.reason = 'upstream_error';
          outcome.detail = err instanceof ValueChanged ? err.message : `redis: ${explainRedisError(err)}`;
          res.destroy();
        }
        resolve();
      });
    });
  }

  return {
    ...identityOf(cfg),
    serve,
    close: async () => {
      for (const c of clients.values()) c.disconnect();
      clients.clear();
    },
  };
}
