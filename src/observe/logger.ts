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

// Query parameters that carry a credential: Keyhole's ?token= and presigned signatures.
const SENSITIVE_PARAM = /([?&](?:token|access_token|x-amz-signature|x-amz-security-token|x-amz-credential|x-goog-signature|x-goog-credential|sig|signature)=)[^&#]*/gi;

/** Redacts credential-bearing parameters from a URL before it is logged anywhere. */
export function redactUrl(url: string): string {
  return url.replace(SENSITIVE_PARAM, '$1[redacted]');
}
