// One audit event per data request, written when the response is over (finished or
// aborted): who asked for what, what Keyhole decided and why, and what it cost.
import type { Logger } from 'pino';
import type { Reason } from '../reasons.js';

export type Decision = 'allow' | 'deny' | 'error';

export interface AuditEvent {
  id: string;
  sub: string | undefined;
  org: string | undefined;
  provider: string | undefined;
  /** the data URI as asked (canonical when it parsed); never the request URL */
  uri: string | undefined;
  decision: Decision;
  reason: Reason;
  status: number;
  bytes: number;
  /** true when the response was cut before completion */
  aborted: boolean;
  ms: number;
  client: string | undefined;
  tokenSource: string | undefined;
}

export function decisionFor(reason: Reason, status: number): Decision {
  if (reason === 'ok' || reason === 'not_found' || reason === 'range_not_satisfiable') return 'allow';
  // An upstream that fails after the 200 head went out leaves status 200: still an error.
  if (status >= 500 || reason.startsWith('upstream_') || reason === 'internal') return 'error';
  return 'deny';
}

/** A second destination for audit events (the Redis stream): must never block or throw. */
export interface AuditSink {
  push(event: AuditEvent): void;
  close(): Promise<void>;
}

export class AuditLog {
  constructor(
    private readonly logger: Logger | undefined,
    private readonly sink?: AuditSink,
  ) {}

  write(event: AuditEvent): void {
    this.logger?.info({ audit: event }, 'access');
    this.sink?.push(event);
  }
}
