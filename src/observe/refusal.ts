// The log line of a refusal that no audit event records.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { sendError } from '../http/answer.ts';
import { statusOf, type Reason } from '../reasons.ts';
import { redactUrl } from './logger.ts';

/** The longest request target a refusal line carries: enough to recognise it, never a flood. */
const MAX_LOGGED_PATH = 1024;

export interface RefusalContext {
  /** which part of Keyhole refused: session, admin, app, router, redirect … */
  route: string;
  /** the peer's address, when read earlier than now (a reset connection no longer has one) */
  client?: string | undefined;
  /** more fields for the line (never a credential, a token or a body) */
  fields?: Record<string, unknown>;
  level?: 'info' | 'warn' | 'error';
}

/**
 * The log line of a refusal no audit event records, so the request id of the answer leads
 * somewhere: `msg: 'refused'` with the reason, status, method, the request target with its
 * credentials redacted (`?token=` and the like), and the client's address.
 */
export function logRefusal(logger: Logger, req: Pick<IncomingMessage, 'method' | 'url' | 'socket'>, requestId: string, reason: Reason, ctx: RefusalContext): void {
  const target = req.url ?? '';
  logger[ctx.level ?? 'info'](
    {
      requestId, route: ctx.route, reason, status: statusOf(reason), method: req.method,
      path: redactUrl(target.length > MAX_LOGGED_PATH ? target.slice(0, MAX_LOGGED_PATH) : target),
      client: ctx.client ?? req.socket.remoteAddress, ...ctx.fields,
    },
    'refused',
  );
}

/** Refuses with the JSON error body, and logs the refusal (logRefusal). */
export function refuse(logger: Logger, req: IncomingMessage, res: ServerResponse, reason: Reason, requestId: string, ctx: RefusalContext, extra?: Record<string, string>): void {
  logRefusal(logger, req, requestId, reason, ctx);
  sendError(res, reason, requestId, extra);
}
