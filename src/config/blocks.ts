// Zod building blocks shared by every section of the config schema.
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { Secret } from './secret.ts';

/** Set while parsing: relative paths in the config are taken from the config file's folder. */
export const parseContext = { baseDir: process.cwd() };

/** A plain string; a `${env:…}` reference is accepted too and read as text. */
export const text = () =>
  z.preprocess((v) => (v instanceof Secret ? v.reveal() : v), z.string().min(1, 'must not be empty'));

/** A credential: only `${env:NAME}` or `${file:/path}`, never inline. */
export const secret = () =>
  z.custom<Secret>((v) => v instanceof Secret, {
    message: 'must be a reference ${env:NAME} or ${file:/path}, never an inline secret',
  });

/** A file path, resolved against the config file's folder. */
export const filePath = () => text().transform((p) => (isAbsolute(p) ? p : resolve(parseContext.baseDir, p)));

/** An upstream's URL: absolute, http or https (a forgotten scheme is the usual slip). */
export const httpUrl = () => z.url({ protocol: /^https?$/, message: 'must be an absolute http:// or https:// URL, scheme included (e.g. https://files.internal/)' });

export const port = () => z.number().int().min(0).max(65535);

export const listen = (host: string, portNumber: number) =>
  z.strictObject({ host: z.string().default(host), port: port().default(portNumber) }).prefault({});

/** Milliseconds, written as a number or as '10s', '500ms', '2m'. */
export const duration = (fallbackMs: number) =>
  z
    .union([
      z.number().int().nonnegative(),
      z.string().regex(/^\d+(ms|s|m|h)$/, "must be a number of milliseconds or like '10s', '500ms', '2m'"),
    ])
    .default(fallbackMs)
    .transform((v) => {
      if (typeof v === 'number') return v;
      const n = Number.parseInt(v, 10);
      const unit = v.replace(/^\d+/, '');
      return n * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const)[unit as 'ms' | 's' | 'm' | 'h'];
    });

/** Optional TLS client material for an upstream (mTLS) or for Redis. */
export const clientTls = () =>
  z.strictObject({
    ca: filePath().optional(),
    cert: filePath().optional(),
    key: filePath().optional(),
    servername: z.string().optional(),
    /** only for a lab: turns certificate verification off, loudly logged */
    insecureSkipVerify: z.boolean().default(false),
  });
export type ClientTlsConfig = z.infer<ReturnType<typeof clientTls>>;

/**
 * For a refinement after `z.url()`: zod runs it even when the URL check failed, and `new URL`
 * would then throw out of the whole parse (one "Invalid URL", no path, every other problem
 * hidden). An unparsable URL holds here: its own check has reported it.
 */
export function urlHolds(u: string, check: (url: URL) => boolean): boolean {
  const url = URL.parse(u);
  return url === null || check(url);
}
