// Tamper evidence for the audit log. Each process writes its audit lines as one stream: every
// line carries the stream's id, its sequence number and the SHA-256 of the stream's previous
// line as written, so an edited, deleted or moved line breaks the chain where it was. Every
// `every` events, `intervalMs` after an event no checkpoint covers yet, and when the process
// ends, a checkpoint line joins the chain, signed with an Ed25519 key when one is configured:
// lines before a signed checkpoint cannot be rewritten without the key, and a trail cut after
// its last checkpoint shows as lines no checkpoint covers. `keyhole audit verify` checks it
// (src/cli/audit-verify.ts; docs/audit.md).
//
// An audit line: {"level":"info","time":…,<logger fields>,"kind":"audit","stream":S,"seq":N,"prev":H,"audit":{…},"msg":"access"}
// An alert line: {"level":"warn",…,"kind":"audit","stream":S,"seq":N,"prev":H,"alert":{…},"msg":"alert"} (src/limits/alerts.ts)
// A checkpoint:  {"level":"info","time":T,<logger fields>,"kind":"audit-checkpoint","stream":S,"seq":N,"prev":H,"final":F[,"kid":K,"sig":G],"msg":"audit checkpoint"}
import { createPrivateKey, createPublicKey, hash, randomBytes, sign, type KeyObject } from 'node:crypto';

export const AUDIT_KIND = 'audit';
export const CHECKPOINT_KIND = 'audit-checkpoint';

export interface AuditChainOptions {
  /** Ed25519 private key, PKCS#8 PEM; without one, checkpoints are written unsigned */
  signingKey?: string | undefined;
  /** a checkpoint after this many events (default 1000) */
  every?: number | undefined;
  /** and at most this long after an event no checkpoint covers yet, ms (default 60 000; 0: only by count) */
  intervalMs?: number | undefined;
}

/** What a checkpoint says: the stream was exactly this, up to and including line `seq - 1`. */
export interface AuditCheckpoint {
  stream: string;
  seq: number;
  /** the hash of the stream's line before the checkpoint */
  prev: string;
  time: string;
  /** written as the process ended: nothing follows in this stream */
  final: boolean;
  /** which key signed it (keyId) */
  kid?: string | undefined;
  sig?: string | undefined;
}

/** A line's hash, as the next line's `prev` records it: SHA-256 of its UTF-8 bytes without the newline, base64url. */
export function lineHash(line: string | Buffer): string {
  return hash('sha256', line, 'base64url');
}

/** The `prev` of a stream's first line. */
export function genesis(stream: string): string {
  return lineHash(`keyhole audit genesis ${stream}`);
}

/** The bytes a checkpoint's signature covers. */
export function checkpointPayload(cp: Pick<AuditCheckpoint, 'stream' | 'seq' | 'prev' | 'time' | 'final'>): Buffer {
  return Buffer.from(['keyhole-audit-checkpoint-v1', cp.stream, String(cp.seq), cp.prev, cp.time, cp.final ? 'final' : 'open'].join('\n'));
}

/** A short name for a key pair, the same from its private or its public half: SHA-256 of the SPKI DER, 16 characters. */
export function keyId(key: KeyObject): string {
  const spki = (key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });
  return lineHash(spki).slice(0, 16);
}

/** Why `pem` cannot sign checkpoints, or undefined when it can (the config check). */
export function signingKeyProblem(pem: string): string | undefined {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    return 'must be a private key in PEM (PKCS#8), e.g. made by `openssl genpkey -algorithm ed25519`';
  }
  return key.asymmetricKeyType === 'ed25519' ? undefined : `must be an Ed25519 key, not ${key.asymmetricKeyType ?? 'unknown'}`;
}

/** Where a trail writes: a LineWriter, pino's destination, any stream of lines. */
export interface AuditLineStream {
  write(line: string): unknown;
  flushSync?(): void;
}

/** Takes a copy of each checkpoint (the Redis audit stream): off the host, out of a log editor's reach. */
export interface CheckpointWitness {
  checkpoint?(cp: AuditCheckpoint): void;
}

export class AuditTrail {
  /** unique per process start and destination: a cluster worker's lines form a stream of their own */
  readonly stream = `${process.pid}-${randomBytes(6).toString('base64url')}`;
  private seq = 0;
  /** the hash of the last line written */
  private last: string;
  private sinceCheckpoint = 0;
  private key: KeyObject | undefined;
  private kid: string | undefined;
  private every = 1000;
  private intervalMs = 60_000;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** the witness of the newest audit log on this destination (a reload brings a new one) */
  witness: CheckpointWitness | undefined;
  /** the logger's own fields and the kind, as the checkpoint line carries them */
  private readonly head: string;
  private readonly onInterval = (): void => {
    if (this.sinceCheckpoint > 0) this.checkpoint();
  };

  private readonly out: AuditLineStream;
  constructor(
    out: AuditLineStream,
    bindings: Record<string, unknown>,
    opts: AuditChainOptions,
  ) {
    this.out = out;
    this.last = genesis(this.stream);
    this.head = JSON.stringify({ ...bindings, kind: CHECKPOINT_KIND }).slice(1, -1);
    this.configure(opts);
  }

  /** Takes a reloaded config's key and cadence; the stream goes on. */
  configure(opts: AuditChainOptions): void {
    this.key = opts.signingKey !== undefined ? createPrivateKey(opts.signingKey) : undefined;
    this.kid = this.key ? keyId(this.key) : undefined;
    this.every = opts.every ?? 1000;
    const intervalMs = opts.intervalMs ?? 60_000;
    if (intervalMs !== this.intervalMs && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    this.intervalMs = intervalMs;
  }

  /**
   * Writes one audit line: `start` is the line up to its head (`{"level":…,"kind":"audit"`),
   * `rest` the rest (`,"audit":{…},"msg":"access"}`); the chain fields go between.
   */
  append(start: string, rest: string): void {
    if (this.closed) return;
    const line = start + ',"stream":"' + this.stream + '","seq":' + ++this.seq + ',"prev":"' + this.last + '"' + rest;
    this.last = lineHash(line);
    this.out.write(line + '\n');
    if (++this.sinceCheckpoint >= this.every) this.checkpoint();
    else if (this.timer === undefined && this.intervalMs > 0) this.timer = setInterval(this.onInterval, this.intervalMs).unref();
  }

  /**
   * Writes a checkpoint when events came since the last one (`final`: in any case, once the
   * stream has begun) and hands it to `to` (default: the witness).
   */
  checkpoint(opts: { final?: boolean; to?: CheckpointWitness | undefined } = {}): void {
    const final = opts.final === true;
    if (this.closed || (this.sinceCheckpoint === 0 && !(final && this.seq > 0))) return;
    const cp: AuditCheckpoint = { stream: this.stream, seq: ++this.seq, prev: this.last, time: new Date().toISOString(), final };
    if (this.key) {
      cp.kid = this.kid;
      cp.sig = sign(null, checkpointPayload(cp), this.key).toString('base64url');
    }
    const line =
      '{"level":"info","time":"' + cp.time + '",' + this.head + ',"stream":"' + cp.stream + '","seq":' + cp.seq + ',"prev":"' + cp.prev + '","final":' + String(final) +
      (cp.sig !== undefined ? ',"kid":"' + cp.kid + '","sig":"' + cp.sig + '"' : '') + ',"msg":"audit checkpoint"}';
    this.last = lineHash(line);
    this.out.write(line + '\n');
    this.sinceCheckpoint = 0;
    (opts.to ?? this.witness)?.checkpoint?.(cp);
  }

  /** The final checkpoint (when the stream has begun), written out now; nothing after it. */
  close(): void {
    if (this.closed) return;
    this.checkpoint({ final: true });
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    live.delete(this);
    try {
      this.out.flushSync?.();
    } catch {
      // a destination that is gone: nothing more to do at exit
    }
  }
}

/** The trail of each destination: every audit log writing there (one per reload) continues it. */
const trails = new WeakMap<object, AuditTrail>();
/** trails to close at exit */
const live = new Set<AuditTrail>();
let closingAtExit = false;

/**
 * The trail that writes to `out`, made on first use; a later call (a reloaded config) takes
 * its key and cadence. Trails end with a final checkpoint at process exit (after a drain,
 * process.exit, or an uncaught error; a kill -9 leaves the stream without one).
 */
export function auditTrailFor(out: AuditLineStream, bindings: Record<string, unknown>, opts: AuditChainOptions): AuditTrail {
  let trail = trails.get(out);
  if (trail === undefined) {
    trail = new AuditTrail(out, bindings, opts);
    trails.set(out, trail);
    // After the LineWriters' own exit hook (registered when the first one was made): close()
    // flushes what it writes itself.
    if (!closingAtExit) process.once('exit', closeAuditTrails);
    closingAtExit = true;
    live.add(trail);
  } else {
    trail.configure(opts);
  }
  return trail;
}

/** The trail writing to `out`, if any (tests, diagnostics). */
export function auditTrailOf(out: object): AuditTrail | undefined {
  return trails.get(out);
}

/** Ends every trail with its final checkpoint (at exit; a drain may call it earlier). */
export function closeAuditTrails(): void {
  for (const trail of [...live]) trail.close();
}
