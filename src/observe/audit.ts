// One audit event per data request, written when the response is over (finished or
// aborted): who asked for what, what Keyhole decided and why, and what it cost.
import pino, { type Logger } from 'pino';
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

interface LineStream {
  write(line: string): unknown;
}

export class AuditLog {
  private readonly stream: LineStream | undefined;
  /** the logger's own fields (service, a cluster worker's id …), serialised once */
  private readonly head: string;

  /**
   * `logger`: audit lines go to its destination, in its JSON shape. They are built here
   * rather than through pino: an audit event is flat, carries no secret by construction
   * (never a header, a token or a request URL), and pino's redaction walk and serializers
   * cost more than the rest of Keyhole's own per-request work (see docs/performance.md).
   * They are written whatever the log level: `log.audit` alone turns them off.
   */
  constructor(
    logger: Logger | undefined,
    private readonly sink?: AuditSink,
  ) {
    const stream = logger ? (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] : undefined;
    this.stream = stream !== null && typeof stream === 'object' && typeof (stream as LineStream).write === 'function' ? (stream as LineStream) : undefined;
    const fields = JSON.stringify({ ...logger?.bindings(), kind: 'audit' });
    this.head = fields.slice(1, -1);
  }

  write(event: AuditEvent): void {
    this.stream?.write(
      '{"level":"info","time":"' + new Date().toISOString() + '",' + this.head + ',"audit":' + JSON.stringify(event) + ',"msg":"access"}\n',
    );
    this.sink?.push(event);
  }
}
