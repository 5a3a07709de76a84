// One audit event per data request (written when the response is over, finished or
// aborted), per URI of a presign batch, and per request head refused before any route: who
// asked for what, what Keyhole decided and why, and what it cost.
import pino, { type Logger } from 'pino';
import { statusOf, type Reason } from '../reasons.ts';
import { auditTrailFor, type AuditChainOptions, type AuditCheckpoint, type AuditLineStream, type AuditTrail } from './audit-chain.ts';
import { redactUrl } from './logger.ts';
import { jsonStreamOf } from './text-lines.ts';

export type Decision = 'allow' | 'deny' | 'error';

/**
 * What the event records: `data`, a read through /v1/data (bytes are what was sent);
 * `presign`, one URI of a /v1/presign batch (a URL issued, or refused: never a download);
 * `head`, a request head refused before any route read it (too large, unparsable);
 * `authorize`, a decision asked by a data plane through /v1/authorize (it sends the bytes:
 * `bytes` is 0, the data plane's own log has them under the same id).
 */
export type AuditKind = 'data' | 'presign' | 'head' | 'authorize';

export interface AuditEvent {
  id: string;
  kind: AuditKind;
  /** the token's subject; read from a refused token when `unverified` is set */
  sub: string | undefined;
  /** the token's id (jti), to revoke it or find its other uses; same provenance as `sub` */
  jti: string | undefined;
  /**
   * true when `sub` and `jti` come from a token that was refused (bad signature, expired,
   * revoked, wrong claims): read without trusting it, so it names who the token claims to
   * be, not who asked. Absent when they come from a verified token (or there are none).
   */
  unverified?: true | undefined;
  org: string | undefined;
  provider: string | undefined;
  /**
   * the data URI as asked (canonical when it parsed); never the request URL. Client-given:
   * `AuditLog.write` redacts credentials in it (redactUrl) for every route and every sink.
   */
  uri: string | undefined;
  decision: Decision;
  reason: Reason;
  status: number;
  bytes: number;
  /** true when the response was cut before completion */
  aborted: boolean;
  ms: number;
  /** the peer's address, read when the request began (a reset connection no longer has one) */
  client: string | undefined;
  tokenSource: string | undefined;
  /** the provider's detail (never a credential or an upstream URL) */
  detail?: string | undefined;
  /** presign: when the issued URL stops working (ISO 8601) */
  expiresAt?: string | undefined;
}

export function decisionFor(reason: Reason, status: number): Decision {
  if (reason === 'ok' || reason === 'not_found' || reason === 'range_not_satisfiable') return 'allow';
  // An upstream that fails after the 200 head went out leaves status 200: still an error.
  if (status >= 500 || reason.startsWith('upstream_') || reason === 'internal') return 'error';
  return 'deny';
}

/** What a route knows of an event: the rest has defaults (see auditEvent). */
export type AuditFields = Pick<AuditEvent, 'id' | 'kind' | 'reason'> & Partial<Omit<AuditEvent, 'id' | 'kind' | 'reason'>>;

/**
 * An audit event with the defaults filled in: no subject, provider or URI; the reason's own
 * status; the decision that reason and status make; nothing sent, not cut, no time taken.
 * Every field is assigned in one order (one object shape for every event).
 */
export function auditEvent(f: AuditFields): AuditEvent {
  const status = f.status ?? statusOf(f.reason);
  return {
    id: f.id, kind: f.kind, sub: f.sub, jti: f.jti, unverified: f.unverified, org: f.org, provider: f.provider, uri: f.uri,
    decision: f.decision ?? decisionFor(f.reason, status), reason: f.reason, status, bytes: f.bytes ?? 0, aborted: f.aborted ?? false,
    ms: f.ms ?? 0, client: f.client, tokenSource: f.tokenSource, detail: f.detail, expiresAt: f.expiresAt,
  };
}

/** A second destination for audit events (the Redis stream): must never block or throw. */
export interface AuditSink {
  push(event: AuditEvent): void;
  /** an alert (src/limits/alerts.ts), a flat JSON object with its own `id` */
  alert?(alert: object): void;
  /** a copy of each checkpoint of the audit log's chain (src/observe/audit-chain.ts) */
  checkpoint?(cp: AuditCheckpoint): void;
  /** `fn` runs when close() begins, before what is buffered is written */
  onClosing?(fn: () => void): void;
  close(): Promise<void>;
}

export interface AuditLogOptions {
  /** where audit lines go instead of the logger's destination (`log.auditDestination`) */
  destination?: AuditLineStream | undefined;
  /**
   * Chain the lines and checkpoint them (`log.auditChain`; Keyhole always does). Without it,
   * plain lines: the shape tests of the line itself.
   */
  chain?: AuditChainOptions | undefined;
}

export class AuditLog {
  private readonly stream: AuditLineStream | undefined;
  private readonly trail: AuditTrail | undefined;
  /** the logger's own fields (service, a cluster worker's id …), serialised once */
  private readonly head: string;

  /**
   * `logger`: audit lines go to its destination, in its JSON shape. They are built here
   * rather than through pino: an audit event is flat, carries no secret by construction
   * (never a header, a token or a request URL), and pino's redaction walk and serializers
   * cost more than the rest of Keyhole's own per-request work (see docs/performance.md).
   * They are written whatever the log level: `log.audit` alone turns them off (no logger:
   * no line anywhere, `opts.destination` included).
   *
   * With `opts.chain`, lines join the chain of their destination: one per destination and
   * process, which every AuditLog a reload builds on that destination continues, and whose
   * checkpoints also go to the newest sink (and to a closing sink, covering what it got).
   */
  private readonly sink?: AuditSink;
  constructor(
    logger: Logger | undefined,
    sink?: AuditSink,
    opts: AuditLogOptions = {},
  ) {
    this.sink = sink;
    // Under `log.format: text` the logger's stream rewrites lines: audit lines take the JSON one beneath.
    const stream = logger ? (opts.destination ?? jsonStreamOf((logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym])) : undefined;
    this.stream = stream !== null && typeof stream === 'object' && typeof (stream as AuditLineStream).write === 'function' ? (stream as AuditLineStream) : undefined;
    const bindings = logger?.bindings() ?? {};
    const fields = JSON.stringify({ ...bindings, kind: 'audit' });
    this.head = fields.slice(1, -1);
    const trail = this.stream && opts.chain ? auditTrailFor(this.stream, bindings, opts.chain) : undefined;
    this.trail = trail;
    if (trail && sink?.checkpoint) {
      trail.witness = sink;
      sink.onClosing?.(() => trail.checkpoint({ to: sink }));
    }
  }

  write(event: AuditEvent): void {
    // The one place every audited URI passes: whichever route wrote the event, a token or a
    // signature in the URI a client sent never reaches the log or the stream.
    const uri = event.uri;
    if (uri !== undefined) {
      const redacted = redactUrl(uri);
      if (redacted !== uri) event = { ...event, uri: redacted };
    }
    // The sink first: a checkpoint this line brings about follows the event there too.
    this.sink?.push(event);
    if (this.stream) {
      const start = '{"level":"info","time":"' + isoNow() + '",' + this.head;
      const rest = ',"audit":' + auditJson(event) + ',"msg":"access"}';
      if (this.trail) this.trail.append(start, rest);
      else this.stream.write(start + rest + '\n');
    }
  }

  /**
   * An alert (a limit's threshold crossed, a subject refused again and again) as an audit
   * line of its own — `"alert":{…},"msg":"alert"` — in the same chain as the access events,
   * so deleting one shows, and to the sink (the Redis audit stream).
   */
  alert(alert: object): void {
    this.sink?.alert?.(alert);
    if (this.stream) {
      const start = '{"level":"warn","time":"' + isoNow() + '",' + this.head;
      const rest = ',"alert":' + JSON.stringify(alert) + ',"msg":"alert"}';
      if (this.trail) this.trail.append(start, rest);
      else this.stream.write(start + rest + '\n');
    }
  }
}

/** Strings that JSON carries as they are: printable ASCII without quote or backslash. */
const NEEDS_ESCAPING = /[^\x20-\x21\x23-\x5b\x5d-\x7e]/;

function str(value: string): string {
  return NEEDS_ESCAPING.test(value) ? JSON.stringify(value) : '"' + value + '"';
}

function opt(name: string, value: string | undefined): string {
  return value === undefined ? '' : ',"' + name + '":' + str(value);
}

function num(value: number): string {
  return Number.isFinite(value) ? String(value) : 'null';
}

/**
 * `JSON.stringify(event)`, field for field (absent ones left out, as there), in about a
 * third of the time: the fields and their order are fixed, and most values need no escaping.
 */
export function auditJson(e: AuditEvent): string {
  return (
    '{"id":' + str(e.id) + ',"kind":' + str(e.kind) + opt('sub', e.sub) + opt('jti', e.jti) + (e.unverified === true ? ',"unverified":true' : '') +
    opt('org', e.org) + opt('provider', e.provider) + opt('uri', e.uri) +
    ',"decision":' + str(e.decision) + ',"reason":' + str(e.reason) + ',"status":' + num(e.status) + ',"bytes":' + num(e.bytes) +
    ',"aborted":' + (e.aborted ? 'true' : 'false') + ',"ms":' + num(e.ms) + opt('client', e.client) + opt('tokenSource', e.tokenSource) +
    opt('detail', e.detail) + opt('expiresAt', e.expiresAt) + '}'
  );
}

let lastMs = 0;
let lastIso = '';

/** The time as ISO 8601, formatted once per millisecond. */
function isoNow(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastIso = new Date(now).toISOString();
  }
  return lastIso;
}
