// Error answers: one JSON shape everywhere, with the reason code and the request id that
// finds the matching log line. Never an upstream URL, a credential or a stack.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { redactUrl } from '../observe/logger.js';
import type { Duplex } from 'node:stream';
import type { DataRequest } from '../providers/types.js';
import { writeDataHead } from '../relay/headers.js';
import { REASONS, type Reason } from '../reasons.js';

export interface ErrorBody {
  error: Reason;
  message: string;
  requestId: string;
}

/**
 * Answers `status` with the JSON error body. `head`: header fields to send with it (a data
 * request's own, see DataRequest.head); headers set earlier with setHeader are kept too.
 */
export function sendError(res: ServerResponse, status: number, reason: Reason, requestId: string, extra?: Record<string, string>, head?: readonly string[]): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: reason, message: REASONS[reason], requestId } satisfies ErrorBody);
  writeDataHead(res, status, head ?? [], {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...extra,
  });
  res.end(body);
}

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
export function logRefusal(logger: Logger, req: Pick<IncomingMessage, 'method' | 'url' | 'socket'>, requestId: string, status: number, reason: Reason, ctx: RefusalContext): void {
  const target = req.url ?? '';
  logger[ctx.level ?? 'info'](
    {
      requestId, route: ctx.route, reason, status, method: req.method,
      path: redactUrl(target.length > MAX_LOGGED_PATH ? target.slice(0, MAX_LOGGED_PATH) : target),
      client: ctx.client ?? req.socket.remoteAddress, ...ctx.fields,
    },
    'refused',
  );
}

/** Refuses with the JSON error body, and logs the refusal (logRefusal). */
export function refuse(logger: Logger, req: IncomingMessage, res: ServerResponse, status: number, reason: Reason, requestId: string, ctx: RefusalContext, extra?: Record<string, string>): void {
  logRefusal(logger, req, requestId, status, reason, ctx);
  sendError(res, status, reason, requestId, extra);
}

/** A data request refused (or failed) with its reason code, with the request's own header fields. */
export function refuseData(res: ServerResponse, req: Pick<DataRequest, 'id' | 'head'>, status: number, reason: Reason, extra?: Record<string, string>): void {
  sendError(res, status, reason, req.id, extra, req.head);
}

/**
 * The header fields on every answer of the data listener: HSTS when it speaks TLS, and no
 * referrer. Flat [name, value, …], computed once per configuration.
 */
export function securityHeaderFields(cfg: { tls?: unknown; hsts: { maxAge: number; includeSubDomains: boolean; preload: boolean } }): readonly string[] {
  const fields = ['referrer-policy', 'no-referrer'];
  if (cfg.tls) {
    const h = cfg.hsts;
    fields.unshift('strict-transport-security', `max-age=${h.maxAge}${h.includeSubDomains ? '; includeSubDomains' : ''}${h.preload ? '; preload' : ''}`);
  }
  return Object.freeze(fields);
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.setHeader('cache-control', 'no-store');
  res.setHeader('x-content-type-options', 'nosniff');
  res.end(body);
}

/**
 * Answers an HTTP parse error that Node raises before any route runs. A request head
 * over `server.maxHeaderSize` gets 431 with the usual JSON body and reason code (Node's
 * default answer has neither); other parse errors keep Node's plain 400/408/413.
 * Returns the reason code when it answered, for the audit event.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): { status: number; reason: Reason; id: string } | undefined {
  // As Node does: answer only when no response of this connection has begun, then close.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return undefined;
  }
  const known: Record<string, [number, string]> = {
    HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large'],
    ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout'],
    HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'Content Too Large'],
  };
  const [status, text] = known[err.code ?? ''] ?? [400, 'Bad Request'];
  const reason: Reason = status === 431 ? 'header_too_large' : 'bad_request';
  const id = randomUUID();
  const body = JSON.stringify({ error: reason, message: REASONS[reason], requestId: id } satisfies ErrorBody);
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nX-Request-Id: ${id}\r\nConnection: close\r\n\r\n${body}`,
    // end() alone would leave a half-open socket that keeps server.close() waiting.
    () => socket.destroy(),
  );
  return { status, reason, id };
}
