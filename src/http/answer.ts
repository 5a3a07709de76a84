// Error answers: one JSON shape everywhere, with the reason code and the request id that
// finds the matching log line. Never an upstream URL, a credential or a stack.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { REASONS, statusOf, type Reason } from '../reasons.ts';
import type { DataRequest } from './data-request.ts';
import { writeDataHead } from './data-head.ts';

export interface ErrorBody {
  error: Reason;
  message: string;
  requestId: string;
}

function errorBody(reason: Reason, requestId: string): string {
  return JSON.stringify({ error: reason, message: REASONS[reason], requestId } satisfies ErrorBody);
}

/**
 * Answers with the reason's status and the JSON error body. `head`: header fields to send with it (a data
 * request's own, see DataRequest.head); headers set earlier with setHeader are kept too.
 */
export function sendError(res: ServerResponse, reason: Reason, requestId: string, extra?: Record<string, string>, head?: readonly string[]): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(reason, requestId);
  // Every error answer names its request id in a header too (the data route's `head` has it).
  writeDataHead(res, statusOf(reason), head ?? ['x-request-id', requestId], {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...extra,
  });
  res.end(body);
}

/** A data request refused (or failed) with its reason code, with the request's own header fields. */
export function refuseData(res: ServerResponse, req: Pick<DataRequest, 'id' | 'head'>, reason: Reason, extra?: Record<string, string>): void {
  sendError(res, reason, req.id, extra, req.head);
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
 * Writes a complete error answer on a raw socket (an upgrade not taken, a head Node could
 * not parse) and closes it `lingerMs` after the bytes are out.
 */
export function refuseSocket(socket: Duplex, reason: Reason, id: string, extra: Record<string, string> = {}, lingerMs = 1000, status = statusOf(reason)): void {
  const body = errorBody(reason, id);
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'content-type: application/json; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    'cache-control: no-store',
    'x-content-type-options: nosniff',
    `x-request-id: ${id}`,
    'connection: close',
    ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`),
  ];
  if (!socket.writable) return void socket.destroy();
  // Detached from the HTTP server, nothing else would ever close this socket.
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`, () => (lingerMs === 0 ? socket.destroy() : setTimeout(() => socket.destroy(), lingerMs).unref()));
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
  const known: Record<string, number> = { HPE_HEADER_OVERFLOW: 431, ERR_HTTP_REQUEST_TIMEOUT: 408, HPE_CHUNK_EXTENSIONS_OVERFLOW: 413 };
  const status = known[err.code ?? ''] ?? 400;
  const reason: Reason = status === 431 ? 'header_too_large' : 'bad_request';
  const id = randomUUID();
  // Closed at once: a half-open socket would keep server.close() waiting.
  refuseSocket(socket, reason, id, {}, 0, status);
  return { status, reason, id };
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
