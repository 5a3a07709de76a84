// `keyhole audit verify`: reads audit log files as written (rotated ones in order, several
// processes' streams interleaved, operational lines among them) and says, line by line,
// where the trail was edited, cut, reordered or shortened (the chain: src/observe/audit-chain.ts).
//
// One pass, whatever the size: a stream's lines are checked against its previous line as
// they come; only lines next to a hole (missing so far) are kept, to check the late lines
// that fill it (moved, not deleted) against their neighbours.
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { createGunzip } from 'node:zlib';
import { AUDIT_KIND, CHECKPOINT_KIND, checkpointPayload, genesis, keyId, lineHash } from '../observe/audit-chain.ts';
import { fail } from './exit.ts';

export const AUDIT_USAGE = `usage: keyhole audit verify FILE… [--key PUBLIC.pem]… [--partial] [--json]

Checks the tamper evidence of Keyhole's audit lines (docs/audit.md). Give every file of
the trail, oldest first: rotated ones too, compressed (.gz) or not, - for stdin, e.g.

  keyhole audit verify audit.log.3.gz audit.log.2 audit.log.1 audit.log --key audit-key.pub.pem
  kubectl logs deploy/keyhole -c keyhole | keyhole audit verify - --partial --key audit-key.pub.pem

Lines of several processes (cluster workers, restarts) may be interleaved; lines that are
not audit lines are skipped. Every finding is named by file:line:

  edited             the line does not hash to what the next line of its stream recorded
  deleted            lines of a stream are missing between two lines of one file
  gap-between-files  lines of a stream are missing where it goes on in the next file
  reordered          lines of a stream are out of their written order
  duplicated         a line number of a stream appears twice
  truncated          lines after a stream's last checkpoint: nothing covers them
  not-closed         a stream ends at a periodic checkpoint, without its final one
  head-missing       a stream begins after its first line (an older file not given?)
  bad-signature      a checkpoint's signature does not match it (with --key)
  unsigned           a checkpoint without a signature (with --key)
  unknown-key        a checkpoint signed by a key not given with --key
  unreadable         an audit line that is not JSON
  unchained          an audit line without stream, seq and prev
  cut-line           the file ends inside a line

  --key FILE   an Ed25519 public key (PEM; the private key works too), repeatable (a key
               rotated by a reload: give both); checks every checkpoint's signature.
               Without it only the chain is checked, which anyone can recompute
  --partial    the files are a window of the trail: streams may begin after their first
               line and end without a checkpoint (older files pruned, a process still
               writing); those are reported as notes, not findings
  --json       the report as JSON on stdout

Exit 0: intact; 1: findings (tampered, or not provably whole); 2: usage or a file that
cannot be read.
`;

export type FindingKind =
  | 'edited'
  | 'deleted'
  | 'gap-between-files'
  | 'reordered'
  | 'duplicated'
  | 'truncated'
  | 'not-closed'
  | 'head-missing'
  | 'bad-signature'
  | 'unsigned'
  | 'unknown-key'
  | 'unreadable'
  | 'unchained'
  | 'cut-line';

export interface Finding {
  kind: FindingKind;
  /** file:line where the auditor should look */
  file: string;
  line: number;
  stream?: string | undefined;
  seq?: number | undefined;
  message: string;
}

export interface StreamSummary {
  stream: string;
  /** the cluster worker's id, when its lines carry one */
  worker?: unknown;
  firstSeq: number;
  lastSeq: number;
  events: number;
  checkpoints: number;
  /** its last line is a valid final checkpoint: the process ended cleanly and nothing was cut */
  closed: boolean;
  from: string;
  to: string;
}

export interface VerifyReport {
  intact: boolean;
  files: { name: string; lines: number; auditLines: number }[];
  streams: StreamSummary[];
  findings: Finding[];
  /** what holds the trail's proof short without being a finding (e.g. signatures not checked) */
  notes: string[];
  /** kid of every key given with --key */
  keys: string[];
}

export interface VerifyOptions {
  keys?: KeyObject[];
  partial?: boolean;
}

/** A place in the files: the index of the file given and a line number (1-based). */
interface At {
  file: number;
  line: number;
}

interface Entry {
  seq: number;
  prev: string;
  hash: string;
  at: At;
}

/** Lines of a stream missing (so far): seq from..to, between the lines at `before` and `after`. */
interface Hole {
  from: number;
  to: number;
  /** undefined: the stream's head (seq 1 …) */
  before: At | undefined;
  after: At;
}

/** Late lines of a stream (seq first..last) found after the line with seq `afterSeq`. */
interface LateRun {
  first: Entry;
  last: Entry;
  afterSeq: number;
  afterAt: At;
}

interface Stream {
  id: string;
  worker: unknown;
  first: Entry;
  /** the line with the highest seq so far */
  max: Entry;
  holes: Hole[];
  /** lines next to a hole: a late line that fills it is checked against them */
  near: Map<number, Entry>;
  /** the last lines in order, to name where a duplicate's first copy is */
  recent: Map<number, Entry>;
  late: LateRun[];
  events: number;
  checkpoints: number;
  /** the checkpoint with the highest seq that holds (signature valid or not checked) */
  lastCheckpoint: { seq: number; final: boolean; at: At } | undefined;
}

const RECENT = 2048;
const MARK = Buffer.from('"kind":"audit');

export class TrailVerifier {
  private readonly streams = new Map<string, Stream>();
  private readonly findings: Finding[] = [];
  private readonly notes: string[] = [];
  private readonly keys = new Map<string, KeyObject>();
  private readonly fileStats: { name: string; lines: number; auditLines: number }[];
  private signedUnchecked = 0;

  private readonly files: string[];
  private readonly opts: VerifyOptions;
  constructor(
    files: string[],
    opts: VerifyOptions = {},
  ) {
    this.files = files;
    this.opts = opts;
    for (const key of opts.keys ?? []) this.keys.set(keyId(key), key);
    this.fileStats = files.map((name) => ({ name, lines: 0, auditLines: 0 }));
  }

  private where(at: At): string {
    return `${this.files[at.file]}:${at.line}`;
  }

  private find(kind: FindingKind, at: At, message: string, stream?: string, seq?: number): void {
    this.findings.push({ kind, file: this.files[at.file]!, line: at.line, stream, seq, message });
  }

  /** A finding, or with --partial a note: what a window of a trail shows by nature. */
  private findOrNote(kind: FindingKind, at: At, message: string, stream?: string): void {
    if (this.opts.partial) this.notes.push(`${this.where(at)} ${kind}: ${message}`);
    else this.find(kind, at, message, stream);
  }

  /** One line of file `at.file`, without its newline. */
  line(at: At, bytes: Buffer): void {
    const stats = this.fileStats[at.file]!;
    stats.lines++;
    if (bytes.indexOf(MARK) === -1) return;
    let o: unknown;
    try {
      o = JSON.parse(bytes.toString('utf8'));
    } catch {
      stats.auditLines++;
      this.find('unreadable', at, 'an audit line that is not JSON: edited, or cut');
      return;
    }
    if (!isRecord(o) || (o.kind !== AUDIT_KIND && o.kind !== CHECKPOINT_KIND)) return;
    stats.auditLines++;
    const { stream, seq, prev } = o;
    if (typeof stream !== 'string' || typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1 || typeof prev !== 'string') {
      this.find('unchained', at, 'an audit line without its chain (stream, seq, prev): inserted, or written by a Keyhole without the chain');
      return;
    }
    const entry: Entry = { seq, prev, hash: lineHash(bytes), at };
    let s = this.streams.get(stream);
    if (s === undefined) {
      s = { id: stream, worker: o.worker, first: entry, max: entry, holes: [], near: new Map(), recent: new Map(), late: [], events: 0, checkpoints: 0, lastCheckpoint: undefined };
      this.streams.set(stream, s);
      if (seq > 1) {
        s.holes.push({ from: 1, to: seq - 1, before: undefined, after: at });
        s.near.set(seq, entry);
      } else {
        this.checkGenesis(s, entry);
      }
      this.remember(s, entry);
    } else if (!this.place(s, entry)) {
      return; // a duplicate: counted nowhere else
    }
    if (o.kind === CHECKPOINT_KIND) {
      s.checkpoints++;
      if (this.checkpointHolds(s, entry, o) && (s.lastCheckpoint === undefined || seq > s.lastCheckpoint.seq)) s.lastCheckpoint = { seq, final: o.final === true, at };
    } else {
      s.events++;
    }
  }

  /** Fits a line into its stream; false for a duplicate. */
  private place(s: Stream, e: Entry): boolean {
    const max = s.max;
    if (e.seq === max.seq + 1) {
      this.link(s, max, e);
      s.max = e;
      this.remember(s, e);
      return true;
    }
    if (e.seq > max.seq) {
      s.holes.push({ from: max.seq + 1, to: e.seq - 1, before: max.at, after: e.at });
      s.near.set(max.seq, max);
      s.near.set(e.seq, e);
      s.max = e;
      this.remember(s, e);
      return true;
    }
    const i = this.holeIndex(s, e.seq);
    if (i === -1) {
      const firstCopy = s.recent.get(e.seq) ?? s.near.get(e.seq);
      const where = firstCopy ? ` (first at ${this.where(firstCopy.at)})` : '';
      const same = firstCopy?.hash === e.hash;
      this.find(
        'duplicated',
        e.at,
        same ? `seq ${e.seq} again: the same line as before${where}` : `a second line claims seq ${e.seq}${where}: inserted, or one of them edited`,
        s.id,
        e.seq,
      );
      return false;
    }
    // A late line: it fills (part of) a hole, so it was moved, not deleted.
    const hole = s.holes[i]!;
    this.noteLate(s, e);
    const parts: Hole[] = [];
    if (hole.from < e.seq) parts.push({ from: hole.from, to: e.seq - 1, before: hole.before, after: e.at });
    if (e.seq < hole.to) parts.push({ from: e.seq + 1, to: hole.to, before: e.at, after: hole.after });
    s.holes.splice(i, 1, ...parts);
    if (e.seq === 1) this.checkGenesis(s, e);
    const before = s.near.get(e.seq - 1);
    if (e.seq === hole.from && before) this.link(s, before, e);
    const after = s.near.get(e.seq + 1);
    if (e.seq === hole.to && after) this.link(s, e, after);
    s.near.set(e.seq, e);
    for (const seq of [e.seq - 1, e.seq, e.seq + 1]) if (s.near.has(seq) && !this.nextToHole(s, seq)) s.near.delete(seq);
    return true;
  }

  private remember(s: Stream, e: Entry): void {
    s.recent.set(e.seq, e);
    if (s.recent.size > RECENT) s.recent.delete(s.recent.keys().next().value!);
  }

  /** The index of the hole holding `seq`, or -1 (holes are sorted and disjoint). */
  private holeIndex(s: Stream, seq: number): number {
    let lo = 0;
    let hi = s.holes.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const h = s.holes[mid]!;
      if (seq < h.from) hi = mid - 1;
      else if (seq > h.to) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  private nextToHole(s: Stream, seq: number): boolean {
    return (seq > 1 && this.holeIndex(s, seq - 1) !== -1) || this.holeIndex(s, seq + 1) !== -1;
  }

  /** Late lines in a row that came after the same line make one finding. */
  private noteLate(s: Stream, e: Entry): void {
    const run = s.late.at(-1);
    if (run && run.afterSeq === s.max.seq && e.seq === run.last.seq + 1) run.last = e;
    else s.late.push({ first: e, last: e, afterSeq: s.max.seq, afterAt: s.max.at });
  }

  /** `b` follows `a` in the stream: it must record a's hash. */
  private link(s: Stream, a: Entry, b: Entry): void {
    if (b.prev === a.hash) return;
    this.find('edited', a.at, `seq ${a.seq} does not hash to the prev that seq ${b.seq} (${this.where(b.at)}) records: this line was edited (or that line's prev)`, s.id, a.seq);
  }

  private checkGenesis(s: Stream, e: Entry): void {
    if (e.prev !== genesis(s.id)) this.find('edited', e.at, `seq 1 does not start from its stream's genesis: its stream, seq or prev was edited`, s.id, 1);
  }

  /** A checkpoint counts when its signature is valid, or when no key was given to check it. */
  private checkpointHolds(s: Stream, e: Entry, o: Record<string, unknown>): boolean {
    const { kid, sig, time, final } = o;
    if (this.keys.size === 0) {
      if (typeof sig === 'string') this.signedUnchecked++;
      return true;
    }
    if (typeof sig !== 'string' || typeof kid !== 'string') {
      this.find('unsigned', e.at, 'a checkpoint without a signature: written without log.auditChain.signingKey, or forged', s.id, e.seq);
      return false;
    }
    const key = this.keys.get(kid);
    if (key === undefined) {
      this.find('unknown-key', e.at, `a checkpoint signed by key ${kid}, not one given with --key (${[...this.keys.keys()].join(', ')})`, s.id, e.seq);
      return false;
    }
    const payload = checkpointPayload({ stream: s.id, seq: e.seq, prev: e.prev, time: typeof time === 'string' ? time : '', final: final === true });
    let valid: boolean;
    try {
      valid = verify(null, payload, key, Buffer.from(sig, 'base64url'));
    } catch {
      valid = false;
    }
    if (!valid) this.find('bad-signature', e.at, 'the signature does not match this checkpoint: forged, or its fields edited', s.id, e.seq);
    return valid;
  }

  /** The file ended inside a line (no newline after it). */
  cutLine(at: At, bytes: Buffer): void {
    this.findOrNote('cut-line', at, 'the file ends inside a line (no newline after it): cut while written, or truncated');
    let parses = true;
    try {
      JSON.parse(bytes.toString('utf8'));
    } catch {
      parses = false;
    }
    if (parses) this.line(at, bytes);
    else this.fileStats[at.file]!.lines++;
  }

  finish(): VerifyReport {
    const streams: StreamSummary[] = [];
    let acrossFiles = false;
    for (const s of this.streams.values()) {
      for (const h of s.holes) {
        const n = h.to - h.from + 1;
        const what = `${n === 1 ? `seq ${h.from}` : `seq ${h.from}–${h.to} (${n} lines)`}`;
        if (h.before === undefined) {
          this.findOrNote('head-missing', h.after, `stream ${s.id} begins at seq ${h.to + 1}: its ${what} are not in these files (an older file not given, or lines deleted)`, s.id);
        } else if (h.before.file !== h.after.file) {
          this.find('gap-between-files', h.after, `${what} of the stream missing between ${this.where(h.before)} and this line: lines at the end of ${this.files[h.before.file]} or the start of ${this.files[h.after.file]} (or a whole file between them) are gone`, s.id, h.from);
        } else {
          this.find('deleted', h.after, `${what} missing between ${this.where(h.before)} and this line`, s.id, h.from);
        }
      }
      for (const run of s.late) {
        const lines = run.first === run.last ? `seq ${run.first.seq}` : `seq ${run.first.seq}–${run.last.seq} (to ${this.where(run.last.at)})`;
        if (run.first.at.file !== run.afterAt.file) acrossFiles = true;
        this.find('reordered', run.first.at, `${lines} written before seq ${run.afterSeq} (${this.where(run.afterAt)}) but found after it: lines moved`, s.id, run.first.seq);
      }
      const cp = s.lastCheckpoint;
      const max = s.max;
      if (cp === undefined) {
        this.findOrNote('truncated', s.first.at, `no checkpoint covers stream ${s.id} (seq ${s.first.seq}–${max.seq}, to ${this.where(max.at)}): cut before its first checkpoint, or its checkpoints removed`, s.id);
      } else if (cp.seq < max.seq) {
        const n = max.seq - cp.seq;
        this.findOrNote('truncated', max.at, `${n} line${n === 1 ? '' : 's'} of stream ${s.id} after its last checkpoint (seq ${cp.seq}, ${this.where(cp.at)}), to this line, not covered by a checkpoint: possibly truncated`, s.id);
      } else if (!cp.final) {
        this.findOrNote('not-closed', cp.at, `stream ${s.id} ends at a periodic checkpoint, without the final one its process writes when it ends: killed, still writing, or the lines after this one were cut`, s.id);
      }
      streams.push({
        stream: s.id,
        ...(s.worker !== undefined ? { worker: s.worker } : {}),
        firstSeq: s.first.seq,
        lastSeq: max.seq,
        events: s.events,
        checkpoints: s.checkpoints,
        closed: cp !== undefined && cp.final && cp.seq === max.seq,
        from: this.where(s.first.at),
        to: this.where(max.at),
      });
    }
    if (acrossFiles) this.notes.push('lines moved across files: were the files given oldest first (e.g. audit.log.2 audit.log.1 audit.log)?');
    if (this.keys.size === 0 && this.streams.size > 0) {
      this.notes.push(
        this.signedUnchecked > 0
          ? `signatures not checked (no --key): ${this.signedUnchecked} checkpoint(s) carry one; without it the chain proves nothing against someone who recomputes it`
          : 'signatures not checked (no --key), and no checkpoint carries one: the chain proves nothing against someone who recomputes it',
      );
    }
    if (this.streams.size === 0) this.notes.push('no audit line in these files');
    this.findings.sort((a, b) => this.files.indexOf(a.file) - this.files.indexOf(b.file) || a.line - b.line);
    return { intact: this.findings.length === 0, files: this.fileStats, streams, findings: this.findings, notes: this.notes, keys: [...this.keys.keys()] };
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Feeds `source`'s lines (bytes, without newline) to the verifier. */
async function readLines(source: Readable, file: number, v: TrailVerifier): Promise<void> {
  let rest: Buffer = Buffer.alloc(0);
  let line = 0;
  for await (const chunk of source) {
    const buf = rest.length > 0 ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
    let start = 0;
    for (let nl = buf.indexOf(10); nl !== -1; nl = buf.indexOf(10, start)) {
      v.line({ file, line: ++line }, buf.subarray(start, nl));
      start = nl + 1;
    }
    rest = buf.subarray(start);
  }
  if (rest.length > 0) v.cutLine({ file, line: line + 1 }, rest);
}

/** Reads the files, in the order given, and verifies the trail they hold. Throws when a file cannot be read. */
export async function verifyTrail(files: string[], opts: VerifyOptions = {}): Promise<VerifyReport> {
  const v = new TrailVerifier(files, opts);
  for (const [i, name] of files.entries()) {
    const raw: Readable = name === '-' ? process.stdin : createReadStream(name);
    const source: Readable = name.endsWith('.gz') ? raw.pipe(createGunzip()) : raw;
    if (source !== raw) raw.on('error', (err: Error) => source.destroy(err));
    try {
      await readLines(source, i, v);
    } catch (err) {
      throw new Error(`${name}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  }
  return v.finish();
}

/** An Ed25519 public key from a PEM file (a private key gives its public half). */
export function readVerifyKey(file: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(readFileSync(file));
  } catch (err) {
    throw new Error(`--key ${file}: not a PEM key (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`--key ${file}: an ${key.asymmetricKeyType ?? 'unknown'} key; checkpoints are signed with Ed25519`);
  return key;
}

export function formatReport(r: VerifyReport): string {
  const audit = r.files.reduce((n, f) => n + f.auditLines, 0);
  const other = r.files.reduce((n, f) => n + f.lines - f.auditLines, 0);
  const out: string[] = [];
  out.push(`${r.files.length} file(s), ${audit} audit line(s) in ${r.streams.length} stream(s), ${other} other line(s) skipped`);
  out.push(r.keys.length > 0 ? `checkpoint signatures checked with key(s) ${r.keys.join(', ')}` : 'checkpoint signatures NOT checked (no --key)');
  if (r.streams.length > 0) {
    out.push('streams:');
    for (const s of r.streams) {
      const worker = s.worker !== undefined ? ` worker ${String(s.worker)}` : '';
      out.push(`  ${s.stream}${worker}: seq ${s.firstSeq}–${s.lastSeq}, ${s.events} event(s), ${s.checkpoints} checkpoint(s), ${s.closed ? 'closed' : 'open'} (${s.from} … ${s.to})`);
    }
  }
  for (const n of r.notes) out.push(`note: ${n}`);
  if (r.intact) {
    out.push('INTACT: every audit line is in its chain, in order, covered by a checkpoint' + (r.keys.length > 0 ? ' with a valid signature' : '') + '.');
  } else {
    out.push(`TAMPERED or incomplete: ${r.findings.length} finding(s)`);
    const width = Math.max(...r.findings.map((f) => `${f.file}:${f.line}`.length));
    for (const f of r.findings) {
      const stream = f.stream !== undefined && !f.message.includes(f.stream) ? `stream ${f.stream}: ` : '';
      out.push(`  ${`${f.file}:${f.line}`.padEnd(width)}  ${f.kind.padEnd(17)}  ${stream}${f.message}`);
    }
  }
  return out.join('\n') + '\n';
}

/** `keyhole audit …` */
export async function auditCommand(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(AUDIT_USAGE);
    return;
  }
  if (sub !== 'verify') fail(`${sub === undefined ? 'audit needs a subcommand' : `unknown audit subcommand ${sub}`}\n${AUDIT_USAGE}`);
  let parsed;
  try {
    parsed = parseArgs({ args: rest, allowPositionals: true, options: { key: { type: 'string', multiple: true }, partial: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } } });
  } catch (err) {
    fail(`${(err as Error).message} (keyhole audit --help)`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(AUDIT_USAGE);
    return;
  }
  if (positionals.length === 0) fail('audit verify needs at least one FILE (keyhole audit --help)');
  let report: VerifyReport;
  try {
    const keys = (values.key ?? []).map(readVerifyKey);
    report = await verifyTrail(positionals, { keys, partial: values.partial });
  } catch (err) {
    fail((err as Error).message);
  }
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  process.exitCode = report.intact ? 0 : 1;
}
