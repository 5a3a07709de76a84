// Error answers: one JSON shape everywhere, with the reason code and the request id that
// finds the matching log line. Never an upstream URL, a credential or a stack.
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { REASONS, type Reason } from '../reasons.js';

export interface ErrorBody {
  error: Reason;
  message: string;
  requestId: string;
}

export function sendError(res: ServerResponse, status: number, reason: Reason, requestId: string, extra?: Record<string, string>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: reason, message: REASONS[reason], requestId } satisfies ErrorBody);
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.setHeader('cache-control', 'no-store');
  res.setHeader('x-content-type-options', 'nosniff');
  if (extra) for (const [k, v] of Object.entries(extra)) res.setHeader(k, v);
  res.end(body);
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
