// YAML for reaching Redis: one of url | sentinel | cluster, with TLS (client certificates
// for mTLS) on by default. The top-level `redis:` section and the `redis` provider kind both
// use `redisConnectionSchema`; the section adds the key prefix and the audit stream.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { clientTls, duration, secret, text } from '../config/blocks.ts';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[a-zA-Z0-9.-]+):\d{1,5}$/, 'must be host:port')
  .transform((v) => {
    const colon = v.lastIndexOf(':');
    return { host: v.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(v.slice(colon + 1)) };
  });

const connectionShape = {
  /** standalone server: rediss://[user@]host:port[/db] (redis:// only with insecurePlaintext) */
  url: text().optional(),
  /** Sentinel: the master's name and the sentinels to ask */
  sentinel: z
    .strictObject({
      name: z.string().min(1),
      nodes: z.array(hostPort).min(1),
      /** TLS to the sentinels themselves (ioredis enableTLSForSentinelMode); the master always gets `tls` */
      tls: z.boolean().default(true),
      username: z.string().min(1).optional(),
      password: secret().optional(),
    })
    .optional(),
  /** Cluster: a few startup nodes; the rest are discovered */
  cluster: z.strictObject({ nodes: z.array(hostPort).min(1) }).optional(),
  username: z.string().min(1).optional(),
  password: secret().optional(),
  /** database for url/sentinel (a cluster only has 0); a rediss://host/N path sets it too */
  db: z.number().int().min(0).max(255).optional(),
  /** CA, client certificate and key (mTLS), servername for hostname verification */
  tls: clientTls().optional(),
  /** plaintext Redis: only on a trusted network, loudly logged */
  insecurePlaintext: z.boolean().default(false),
  /** a TCP+TLS connection (and the start-up probe) must be up within this */
  connectTimeout: duration(5_000),
  /** a command that does not answer within this fails (revocation then fails closed) */
  commandTimeout: duration(1_000),
};

const connectionObject = z.strictObject(connectionShape);
type ConnectionFields = z.infer<typeof connectionObject>;

function checkConnection(c: ConnectionFields, ctx: z.RefinementCtx): void {
  const modes = (['url', 'sentinel', 'cluster'] as const).filter((k) => c[k] !== undefined);
  if (modes.length !== 1) {
    ctx.addIssue({ code: 'custom', message: 'exactly one of url, sentinel or cluster is required', path: [] });
    return;
  }
  const tls = c.tls;
  if (tls && Boolean(tls.cert) !== Boolean(tls.key)) ctx.addIssue({ code: 'custom', message: 'cert and key go together', path: ['tls'] });
  for (const f of ['ca', 'cert', 'key'] as const) {
    const file = tls?.[f];
    if (file === undefined) continue;
    try {
      readFileSync(file);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, path: ['tls', f] });
    }
  }
  if (typeof c.url === 'string') {
    let u: URL;
    try {
      u = new URL(c.url);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'not a URL: rediss://host:port[/db]', path: ['url'] });
      return;
    }
    if (u.password) ctx.addIssue({ code: 'custom', message: 'no password in the URL: use password: ${env:NAME}', path: ['url'] });
    if (u.protocol !== 'rediss:' && u.protocol !== 'redis:') ctx.addIssue({ code: 'custom', message: 'scheme must be rediss:// (or redis:// with insecurePlaintext)', path: ['url'] });
    if (u.protocol === 'redis:' && tls) ctx.addIssue({ code: 'custom', message: 'tls is set but the URL is redis://: use rediss://', path: ['url'] });
    if (u.protocol === 'redis:' && !c.insecurePlaintext) {
      ctx.addIssue({ code: 'custom', message: 'redis:// is plaintext: use rediss:// (or set insecurePlaintext: true on a trusted network)', path: ['url'] });
    }
    if (u.protocol === 'rediss:' && c.insecurePlaintext) ctx.addIssue({ code: 'custom', message: 'insecurePlaintext contradicts rediss://', path: ['insecurePlaintext'] });
    if (u.pathname.length > 1 && !/^\/\d{1,3}$/.test(u.pathname)) ctx.addIssue({ code: 'custom', message: 'the URL path can only be a database number', path: ['url'] });
  } else if (!tls && !c.insecurePlaintext) {
    ctx.addIssue({ code: 'custom', message: 'tls is required for sentinel/cluster (or set insecurePlaintext: true on a trusted network)', path: ['tls'] });
  } else if (tls && c.insecurePlaintext) {
    ctx.addIssue({ code: 'custom', message: 'insecurePlaintext contradicts tls', path: ['insecurePlaintext'] });
  }
  if (c.cluster !== undefined && c.db !== undefined && c.db !== 0) ctx.addIssue({ code: 'custom', message: 'a cluster only has database 0', path: ['db'] });
}

export const redisConnectionSchema = connectionObject.superRefine(checkConnection);
export type RedisConnectionConfig = z.infer<typeof redisConnectionSchema>;

export const auditStreamSchema = z.strictObject({
  /** stream key (XADD) */
  key: z.string().min(1).default('keyhole:audit'),
  /** approximate bound on the stream length (XADD MAXLEN ~) */
  maxLen: z.number().int().min(1).default(100_000),
  /** events waiting in memory while Redis is slow or away; past this they are dropped (counted) */
  buffer: z.number().int().min(1).max(1_000_000).default(10_000),
  /** events written per round trip */
  batch: z.number().int().min(1).max(10_000).default(200),
});
export type AuditStreamConfig = z.infer<typeof auditStreamSchema>;

/** The top-level `redis:` section: shared state for every replica. */
export const redisSectionSchema = z
  .strictObject({
    ...connectionShape,
    /** prefix of every key and channel Keyhole writes */
    keyPrefix: z.string().max(64).default('keyhole:'),
    /** XADD each audit event to a Redis stream */
    auditStream: auditStreamSchema.optional(),
  })
  .superRefine(checkConnection);
export type RedisSectionConfig = z.infer<typeof redisSectionSchema>;

/** `revocation: {store: redis, …}`: the connection comes from the top-level `redis:` section. */
export const redisRevocationSchema = z.strictObject({
  store: z.literal('redis'),
  /** deny (default): fail closed with 503 while Redis cannot answer; allow: serve unchecked (opt-in) */
  onRedisError: z.enum(['deny', 'allow']).default('deny'),
  /** how long one replica trusts a looked-up answer; pub/sub invalidates it sooner */
  cacheTtl: duration(5_000),
  /** most cached lookups per replica */
  cacheMax: z.number().int().min(0).max(1_000_000).default(50_000),
});
export type RedisRevocationConfig = z.infer<typeof redisRevocationSchema>;
