// pino JSON logs. Redaction is decided once here; on top of it nothing on the data path
// logs a request URL, a header or a token — audit events carry the data URI only.
import pino, { type Logger } from 'pino';
import { textLines } from './text-lines.ts';

export type { Logger };

export const REDACT_PATHS = [
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers.cookie',
  'cookie',
  'password',
  '*.password',
  'secret',
  '*.secret',
];

export interface LoggerOptions {
  level: string;
  /** where lines go; default stdout through an async destination */
  destination?: pino.DestinationStream;
  /** json (default): one JSON object per line; text: a short line for a person (audit lines stay JSON) */
  format?: 'json' | 'text';
}

export function createLogger(opts: LoggerOptions): Logger {
  const json = opts.destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096 });
  const dest = opts.format === 'text' ? textLines(json) : json;
  return pino(
    {
      level: opts.level,
      base: { service: 'keyhole' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
}

// Query parameters that carry a credential: Keyhole's ?token=, OAuth-style tokens, API keys
// and presigned URLs' signatures. Their separators may also come percent-encoded, once or
// more (a presigned URL pasted into a data URI arrives as `…%3FX-Amz-Signature%3D…`); such a
// value ends at an encoded '&' or '#' as well, a plain one only at a plain '&' or '#'.
const NAMES = '(?:token|access_token|id_token|refresh_token|api_key|apikey|key|password|client_secret|x-amz-signature|x-amz-security-token|x-amz-credential|x-goog-signature|x-goog-credential|sig|signature)';
const ENC = (hex: string) => `%(?:25)*(?:${hex})`;
const SENSITIVE_PARAM = new RegExp(
  `([?&#;]${NAMES}=)[^&#]*|((?:[?&#;]|${ENC('3f|26|23|3b')})${NAMES}(?:=|${ENC('3d')}))(?:(?!${ENC('26|23')})[^&#])*`,
  'gi',
);
// user:password@ in the authority.
const USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i;
// A URL without a separator, plain or encoded, nor an '@' holds neither (a canonical data
// URI, %20s and all, mostly): one cheap test instead of two replace walks.
const MAY_CARRY = /[?#&;@]|%(?:25)*(?:3[fb]|2[36])/i;

const keepName = (_match: string, plain: string | undefined, encoded: string | undefined) => `${plain ?? encoded}[redacted]`;

// A name spelled with percent-escapes (`tok%65n=`): URLSearchParams, and so Keyhole's own
// data query, reads it as `token`; the redaction must read it the same way.
const ESCAPED_NAME = /([?&#;])([^=&#?;]*%[^=&#?;]*)=([^&#]*)/g;
const SENSITIVE_NAME = new RegExp(`^${NAMES}$`, 'i');

function redactEscapedName(match: string, sep: string, name: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(name);
  } catch {
    return match;
  }
  return SENSITIVE_NAME.test(decoded) ? `${sep}${name}=[redacted]` : match;
}

// A JWT wherever it sits (a parameter of any name, a path segment): `eyJ` is `{"` in base64url.
const JWT = /eyJ[\w-]{2,}(?:\.|%2e)[\w-]{2,}(?:\.|%2e)[\w-]*/gi;

/**
 * Redacts credentials from a URL (or a client-given data URI) before it is logged anywhere:
 * credential-bearing parameters, plain or percent-encoded (name or separators), user
 * information, and any JWT-shaped string.
 */
export function redactUrl(url: string): string {
  let out = url;
  if (MAY_CARRY.test(out)) {
    out = out.replace(SENSITIVE_PARAM, keepName).replace(USERINFO, '$1[redacted]@');
    if (out.includes('%')) out = out.replace(ESCAPED_NAME, redactEscapedName);
  }
  return out.includes('eyJ') ? out.replace(JWT, '[redacted-jwt]') : out;
}
