// pino JSON logs. Redaction is decided once here; on top of it nothing on the data path
// logs a request URL, a header or a token — audit events carry the data URI only.
import pino, { type Logger } from 'pino';

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
}

export function createLogger(opts: LoggerOptions): Logger {
  const dest = opts.destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096 });
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

/**
 * Redacts credentials from a URL (or a client-given data URI) before it is logged anywhere:
 * credential-bearing parameters, plain or percent-encoded, and user information.
 */
export function redactUrl(url: string): string {
  if (!MAY_CARRY.test(url)) return url;
  return url.replace(SENSITIVE_PARAM, keepName).replace(USERINFO, '$1[redacted]@');
}
