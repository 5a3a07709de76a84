// The whole configuration, as ops write it in YAML. Every key is documented in
// config.example.yaml; docs/config.md is generated from this file.
import { z } from 'zod';
import { appSchema } from '../app/schema.ts';
import { authSchema } from '../auth/schema.ts';
import { providerSchema } from '../providers/kinds.ts';
import { redisRevocationSchema, redisSectionSchema } from '../redis/schema.ts';
import { limitsProblems, limitsSchema } from '../limits/schema.ts';
import { authorizerSchema } from './authorizer.ts';
import { signingKeyProblem } from '../observe/audit-chain.ts';
import { duration, filePath, listen, secret, urlHolds } from './blocks.ts';

const serverSchema = z
  .strictObject({
    listen: listen('0.0.0.0', 8443).describe('address and port of the data listener (HTTPS)'),
    tls: z
      .strictObject({
        cert: filePath().describe('PEM certificate chain; re-read on SIGHUP, /admin/reload and when the file changes'),
        key: filePath().describe('PEM private key matching cert'),
        minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
      })
      .optional()
      .describe('certificate and key for HTTPS (PEM); required unless insecurePlainHttp'),
    http2: z.boolean().default(true).describe('offer HTTP/2 (ALPN h2) beside HTTP/1.1 on the TLS listener; websockets and clients without h2 keep HTTP/1.1'),
    insecurePlainHttp: z.boolean().default(false).describe('serve the data routes over plain HTTP: only behind a mesh that terminates mTLS'),
    redirectHttp: z.strictObject({ host: z.string().default('0.0.0.0'), port: z.number().int().min(0).max(65535) }).optional().describe('an extra plain-HTTP listener that only redirects to HTTPS'),
    publicUrl: z.url({ protocol: /^https?$/ }).optional().describe('public origin printed in start-up hints and used for redirects, e.g. https://data.example.org'),
    hsts: z
      .strictObject({ maxAge: z.number().int().min(0).default(31_536_000), includeSubDomains: z.boolean().default(true), preload: z.boolean().default(false) })
      .prefault({})
      .describe('Strict-Transport-Security on HTTPS responses (maxAge in seconds)'),
    timeouts: z
      .strictObject({
        headers: duration(10_000).describe('the whole request head must arrive within this (slowloris)'),
        request: duration(30_000).describe('the whole request must arrive within this'),
        idle: duration(60_000).describe('a socket with no traffic either way for this long is closed (slow readers)'),
        keepAlive: duration(5_000).describe('an idle keep-alive connection is closed after this'),
      })
      .prefault({}),
    drainTimeout: duration(20_000).describe(
      'on SIGTERM/SIGINT: how long in-flight requests may take to finish before their connections are cut; keep it below the orchestrator grace period (Kubernetes: terminationGracePeriodSeconds)',
    ),
    maxHeaderSize: z.number().int().min(1024).max(65536).default(16_384).describe('largest request head accepted, bytes'),
    maxUriLength: z.number().int().min(64).max(16_384).default(2_048).describe('longest data URI accepted, characters'),
  })
  .refine((s) => s.tls !== undefined || s.insecurePlainHttp, {
    message: 'server.tls is required (set insecurePlainHttp: true only behind a TLS-terminating mesh)',
    path: ['tls'],
  });

const adminSchema = z
  .strictObject({
    listen: listen('127.0.0.1', 9091).describe('health, readiness, metrics and admin actions; loopback unless ops say otherwise'),
    token: secret().optional().describe('bearer credential for /admin/*; without it admin actions are refused'),
  })
  .prefault({});

const corsSchema = z
  .strictObject({
    origins: z.array(z.url().refine((u) => urlHolds(u, (url) => url.origin === u), 'must be an exact origin: scheme://host[:port], no path')).default([]).describe('exact origins (scheme://host[:port]) allowed to read data cross-origin, with credentials'),
    maxAge: z.number().int().min(0).max(86_400).default(600).describe('seconds a preflight answer may be cached'),
  })
  .prefault({});

const revocationSchema = z
  .discriminatedUnion('store', [z.strictObject({ store: z.literal('memory') }), redisRevocationSchema])
  .prefault({ store: 'memory' })
  .describe('where revoked tokens are remembered: memory (one process, or one cluster of workers) or redis (every replica)');

/** `stdout`, or a file (relative to the config file's folder) appended to and reopened when rotated away */
const logTarget = () => z.union([z.literal('stdout'), filePath()]);

const auditChainSchema = z
  .strictObject({
    signingKey: secret()
      .optional()
      .describe('Ed25519 private key (PKCS#8 PEM) as ${file:/path/key.pem}: signs every checkpoint; without it checkpoints are unsigned and only `keyhole audit verify` without --key passes them (docs/audit.md)'),
    checkpointEvery: z.number().int().min(1).max(1_000_000).default(1000).describe('a checkpoint after this many audit events of a process'),
    checkpointInterval: duration(60_000).describe('and at most this long after an event that no checkpoint covers yet (0: by count only); a final checkpoint is written when the process ends'),
  })
  .prefault({})
  .superRefine((c, ctx) => {
    // An empty value is a reference that could not be read: that problem is reported already.
    const pem = c.signingKey?.reveal();
    const problem = pem ? signingKeyProblem(pem) : undefined;
    if (problem) ctx.addIssue({ code: 'custom', message: problem, path: ['signingKey'] });
  })
  .describe('tamper evidence: every audit line carries its process stream, sequence number and the hash of the previous line; checkpoints, signed when a key is set, cover them');

const logSchema = z
  .strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino log level (JSON lines)'),
    format: z
      .enum(['json', 'text'])
      .default('json')
      .describe('operational log lines: json (one object per line, for a log shipper) or text (time LEVEL message key=value…, for a person at a terminal); audit lines stay JSON either way (their hash chain is over the JSON)'),
    audit: z.boolean().default(true).describe('one audit event per data request'),
    destination: logTarget().default('stdout').describe('where log lines go: stdout (default), or a file path (appended to; opened again when rotated away); a change takes effect after a restart'),
    auditDestination: logTarget()
      .optional()
      .describe('where audit events and their checkpoints go, to ship and keep them on their own: stdout or a file path; default: with the other log lines (destination)'),
    auditChain: auditChainSchema,
  })
  .prefault({});

const presignSchema = z
  .strictObject({
    maxBatch: z.number().int().min(1).max(10_000).default(500).describe('most URIs in one POST /v1/presign'),
  })
  .prefault({});

const workersSchema = z
  .union([z.literal('auto'), z.number().int().min(1).max(256)])
  .default(1)
  .describe('processes serving the data listeners: 1 runs in one process; N or auto (one per core) run node:cluster workers supervised by a primary that owns the admin listener');

export const configSchema = z.strictObject({
  workers: workersSchema,
  server: serverSchema,
  admin: adminSchema,
  auth: authSchema,
  revocation: revocationSchema,
  cors: corsSchema,
  log: logSchema,
  presign: presignSchema,
  app: appSchema.optional().describe('the labeling app behind Keyhole: every request outside Keyhole\'s routes goes there'),
  providers: z.array(providerSchema).min(1, 'at least one provider is required').describe('where the bytes are: each provider owns the URIs under its match prefix; a URI no provider owns is refused'),
  redis: redisSectionSchema.optional().describe('shared state for several replicas: revocation (revocation.store: redis), audit stream, limits (limits.store: redis)'),
  limits: limitsSchema.optional(),
  authorizer: authorizerSchema.optional(),
}).superRefine((c, ctx) => {
  if (c.revocation.store === 'redis' && !c.redis) ctx.addIssue({ code: 'custom', message: 'revocation.store redis needs the top-level redis: section', path: ['redis'] });
  for (const p of limitsProblems(c)) ctx.addIssue({ code: 'custom', ...p });
});

export type Config = z.infer<typeof configSchema>;
export type ServerConfig = Config['server'];
