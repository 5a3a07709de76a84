// Error answers: one JSON shape everywhere, with the reason code and the request id that
// finds the matching log line. Never an upstream URL, a credential or a stack.
import type { ServerResponse } from 'node:http';
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
