// YAML keys every cloud kind (s3, gcs, azure) shares: mode, allowlist, TTL, stable-URL
// window, minted-URL cache, redirect status, response overrides, proxy pool settings.
import { z } from 'zod';
import { clientTls, duration } from '../../config/blocks.ts';

/** The longest lifetime any of the three services accepts for a signed URL: 7 days. */
export const SERVICE_MAX_TTL_SECONDS = 604_800;

const wholeSeconds = (fallbackMs: number) =>
  duration(fallbackMs).refine((ms) => ms % 1000 === 0, 'must be a whole number of seconds').transform((ms) => ms / 1000);

/** bucket (or container) names with optional key prefixes; nothing else can be signed */
export const allowlist = (what: 'bucket' | 'container') =>
  z
    .array(
      z.strictObject({
        name: z.string().regex(/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/, `must be a ${what} name: 3-63 of a-z 0-9 . _ -`),
        /** key prefixes; each ends with '/' so that images/ never admits images-private/ */
        prefixes: z.array(z.string().min(1).refine((p) => p.endsWith('/') && !p.startsWith('/'), "must end with '/' and not start with '/'")).min(1).optional(),
      }),
    )
    .min(1, `list at least one ${what}`);

export const cloudCommon = {
  /** presign: answer a redirect to a presigned URL; proxy: sign internally and stream the bytes */
  mode: z.enum(['presign', 'proxy']).default('presign'),
  ttl: z
    .strictObject({
      /** lifetime of a URL when the caller asks for none */
      default: wholeSeconds(300_000),
      /** no URL lives longer than this, whoever asks */
      max: wholeSeconds(3_600_000),
    })
    .prefault({}),
  stable: z
    .strictObject({
      /** signing time rounded down to this, so repeated asks yield the same URL (0: off) */
      window: wholeSeconds(60_000),
      /** every URL handed out has at least this lifetime left */
      minRemaining: wholeSeconds(120_000),
    })
    .prefault({}),
  cache: z.strictObject({ maxEntries: z.number().int().min(0).max(1_000_000).default(10_000) }).prefault({}),
  /** status of the presign-mode answer to GET /v1/data */
  redirectStatus: z.union([z.literal(302), z.literal(303), z.literal(307)]).default(307),
  /** response header overrides signed into the URL (the service then answers with them) */
  response: z
    .strictObject({
      /** a fixed type, or byExtension: from the key's extension */
      contentType: z.string().min(1).optional(),
      contentDisposition: z.enum(['inline', 'attachment']).optional(),
    })
    .prefault({}),
  /** proxy mode: TLS material for the storage endpoint (private CA, mTLS) */
  tls: clientTls().optional(),
  connections: z.number().int().min(1).max(1024).default(64),
  timeouts: z.strictObject({ connect: duration(5_000), headers: duration(15_000), body: duration(30_000) }).prefault({}),
};

export interface CloudCommonConfig {
  mode: 'presign' | 'proxy';
  ttl: { default: number; max: number };
  stable: { window: number; minRemaining: number };
  cache: { maxEntries: number };
  redirectStatus: 302 | 303 | 307;
  response: { contentType?: string | undefined; contentDisposition?: 'inline' | 'attachment' | undefined };
  tls?: z.infer<ReturnType<typeof clientTls>> | undefined;
  connections: number;
  timeouts: { connect: number; headers: number; body: number };
}

/** Cross-field rules every cloud kind checks at config time, with paths. */
export function checkCommon(
  cfg: CloudCommonConfig & { match: string },
  schemes: readonly string[],
  allowed: readonly { name: string }[],
  what: 'bucket' | 'container',
  ctx: z.RefinementCtx,
): void {
  const names = allowed.map((b) => b.name);
  const scheme = cfg.match.slice(0, cfg.match.indexOf('://'));
  if (!schemes.includes(scheme)) {
    ctx.addIssue({ code: 'custom', path: ['match'], message: `must be a ${schemes.map((s) => `${s}://`).join(' or ')} prefix for this kind` });
  }
  // The registry routes by prefix, so a prefix names its bucket (or, for an https:// blob
  // endpoint, its account); that bucket must be one the allowlist admits.
  const authority = cfg.match.slice(scheme.length + 3).split('/')[0] ?? '';
  if (authority === '') ctx.addIssue({ code: 'custom', path: ['match'], message: `must name a ${what}: ${schemes[0]}://NAME/…` });
  else if (scheme !== 'https' && !names.includes(authority)) {
    ctx.addIssue({ code: 'custom', path: ['match'], message: `names ${what} ${authority}, which the allowlist does not list` });
  }
  if (cfg.ttl.max > SERVICE_MAX_TTL_SECONDS) ctx.addIssue({ code: 'custom', path: ['ttl', 'max'], message: `at most ${SERVICE_MAX_TTL_SECONDS}s (7 days), the services' own limit` });
  if (cfg.ttl.max < 1) ctx.addIssue({ code: 'custom', path: ['ttl', 'max'], message: 'must be at least 1s' });
  if (cfg.ttl.default > cfg.ttl.max) ctx.addIssue({ code: 'custom', path: ['ttl', 'default'], message: `must not exceed ttl.max (${cfg.ttl.max}s)` });
  if (cfg.ttl.default <= cfg.stable.minRemaining) {
    ctx.addIssue({ code: 'custom', path: ['stable', 'minRemaining'], message: `must be shorter than ttl.default (${cfg.ttl.default}s)` });
  }
}
