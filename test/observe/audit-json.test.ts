// Audit lines are built by hand rather than through pino (src/observe/audit.ts): auditJson
// must still be JSON.stringify(event) byte for byte, whatever the strings hold, and the line
// AuditLog writes must be the line pino itself would have written for the event.
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { Writable } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import { AuditLog, auditJson, type AuditEvent, type AuditKind, type AuditSink, type Decision } from '../../src/observe/audit.ts';
import { createLogger } from '../../src/observe/logger.ts';
import { REASONS, type Reason } from '../../src/reasons.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 400);

function check<T>(t: Test, name: string, arb: fc.Arbitrary<T>, pred: (v: T) => boolean): void {
  const res = fc.check(fc.property(arb, pred), { numRuns: RUNS });
  t.notOk(res.failed, `${name} (${res.numRuns} cases)${res.failed ? ` — counterexample ${JSON.stringify(res.counterexample)}: ${String(res.errorInstance)}` : ''}`);
}

// What JSON escapes (quote, backslash, C0 controls), what it must not (DEL, U+2028, non-ASCII),
// and what only well-formed JSON.stringify escapes: lone surrogates.
const TRICKY = ['"', '\\', '\u0000', '\u0008', '\t', '\n', '\r', '\u001f', ' ', '!', '#', '[', ']', '~', '\u007f', '\u0080', '\u00e9', '\u2028', '\u2029', '\ud800', '\udfff', '\ud83d\ude00', '\ufeff', '/', '</script>', 'a', '漢'];
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: fc.constantFrom(...TRICKY), maxLength: 20 }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
);
const optText = fc.option(text, { nil: undefined, freq: 3 });
const num = fc.oneof(
  fc.integer(),
  fc.nat(),
  fc.double(), // NaN, ±Infinity and -0 included: JSON writes null, null and 0
  fc.constantFrom(NaN, Infinity, -Infinity, -0, 0, 1e21, 1e-7, 5e-324, Number.MAX_SAFE_INTEGER + 2, 0.1 + 0.2),
);
const decision = fc.oneof(fc.constantFrom<Decision>('allow', 'deny', 'error'), text.map((s) => s as Decision));
const reason = fc.oneof(fc.constantFrom(...(Object.keys(REASONS) as Reason[])), text.map((s) => s as Reason));

const kind = fc.oneof(fc.constantFrom<AuditKind>('data', 'presign', 'head'), text.map((s) => s as AuditKind));

/** An event with its fields in AuditEvent's order (JSON.stringify follows insertion order). */
const event: fc.Arbitrary<AuditEvent> = fc
  .record({
    head: fc.tuple(text, kind, optText, optText, fc.constantFrom('absent', 'undefined', 'true')),
    rest: fc.tuple(optText, optText, optText, decision, reason, num, num, fc.boolean(), num, optText, optText),
    tail: fc.tuple(optText, fc.boolean(), optText, fc.boolean()),
  })
  .map(({ head: [id, kind, sub, jti, unverified], rest: [org, provider, uri, decision, reason, status, bytes, aborted, ms, client, tokenSource], tail: [detail, withDetail, expiresAt, withExpiry] }) => {
    const e: Partial<AuditEvent> = { id, kind, sub, jti };
    // unverified is optional: absent, present-but-undefined and true.
    if (unverified !== 'absent') e.unverified = unverified === 'true' ? true : undefined;
    Object.assign(e, { org, provider, uri, decision, reason, status, bytes, aborted, ms, client, tokenSource });
    // detail and expiresAt are optional: absent and present-but-undefined must both be left out.
    if (withDetail) e.detail = detail;
    if (withExpiry) e.expiresAt = expiresAt;
    return e as AuditEvent;
  });

/** What JSON.parse must give back: undefined fields gone, non-finite numbers null, -0 as 0 (lone surrogates survive as \u escapes). */
function expected(e: AuditEvent): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) {
    if (v === undefined) continue;
    out[k] = typeof v === 'number' ? (Number.isFinite(v) ? v + 0 : null) : v;
  }
  return out;
}

t.test('auditJson is JSON.stringify, byte for byte, for any event', async (t) => {
  check(t, 'auditJson === JSON.stringify', event, (e) => auditJson(e) === JSON.stringify(e));
  check(t, 'auditJson parses back to the event', event, (e) => isDeepStrictEqual(JSON.parse(auditJson(e)), expected(e)));
});

t.test('auditJson: explicit events', async (t) => {
  const full: AuditEvent = { id: 'r1', kind: 'data', sub: 'alice', jti: 'j1', unverified: true, org: 'acme', provider: 'files', uri: 'local://files/a.txt', decision: 'allow', reason: 'ok', status: 200, bytes: 11, aborted: false, ms: 1.25, client: '127.0.0.1', tokenSource: 'header', detail: 'x', expiresAt: '2030-01-01T00:00:00.000Z' };
  t.equal(auditJson(full), JSON.stringify(full));
  t.equal(auditJson(full), '{"id":"r1","kind":"data","sub":"alice","jti":"j1","unverified":true,"org":"acme","provider":"files","uri":"local://files/a.txt","decision":"allow","reason":"ok","status":200,"bytes":11,"aborted":false,"ms":1.25,"client":"127.0.0.1","tokenSource":"header","detail":"x","expiresAt":"2030-01-01T00:00:00.000Z"}');
  const bare: AuditEvent = { id: 'r2', kind: 'head', sub: undefined, jti: undefined, unverified: undefined, org: undefined, provider: undefined, uri: undefined, decision: 'deny', reason: 'token_missing', status: 401, bytes: 0, aborted: true, ms: NaN, client: undefined, tokenSource: undefined, detail: undefined, expiresAt: undefined };
  t.equal(auditJson(bare), '{"id":"r2","kind":"head","decision":"deny","reason":"token_missing","status":401,"bytes":0,"aborted":true,"ms":null}', 'undefined fields are left out, NaN is null');
  t.equal(auditJson(bare), JSON.stringify(bare));
  const nasty: AuditEvent = { ...full, uri: 's3://b/"quoted"\\back\u0000\n\u2028\ud800', detail: '\udfff漢😀', ms: Infinity, bytes: -0 };
  t.equal(auditJson(nasty), JSON.stringify(nasty));
  t.match(auditJson(nasty), /"uri":"s3:\/\/b\/\\"quoted\\"\\\\back\\u0000\\n\u2028\\ud800"/, 'quote, backslash, controls and a lone surrogate escaped');
});

function sink(): { stream: Writable; lines: () => string[] } {
  let out = '';
  const stream = new Writable({
    write(c, _e, cb) {
      out += c.toString();
      cb();
    },
  });
  return { stream, lines: () => out.split('\n').filter((l) => l !== '') };
}

const EVENTS: AuditEvent[] = [
  { id: 'a', kind: 'data', sub: 'alice', jti: 'j-a', org: 'acme', provider: 'files', uri: 'local://files/a.txt', decision: 'allow', reason: 'ok', status: 200, bytes: 11, aborted: false, ms: 0.5, client: '127.0.0.1', tokenSource: 'header' },
  { id: 'b', kind: 'presign', sub: 'mallory', jti: undefined, unverified: true, org: undefined, provider: undefined, uri: undefined, decision: 'deny', reason: 'token_missing', status: 401, bytes: 0, aborted: false, ms: 0.01, client: '::1', tokenSource: undefined },
  { id: 'c', kind: 'head', sub: 'bob "the" \\ builder\n', jti: '\u2028', org: 'é', provider: 's3', uri: 's3://b/漢/😀', decision: 'error', reason: 'upstream_error', status: 200, bytes: 1e6, aborted: true, ms: NaN, client: undefined, tokenSource: 'cookie', detail: 'reset\u0000' },
];

/** The line pino writes for the same event through the same logger, with `time` set to `time`. */
function pinoLine(write: (e: AuditEvent) => void, lines: () => string[], e: AuditEvent): string {
  write(e);
  return lines().at(-1)!;
}

const withTime = (line: string, time: string): string => line.replace(/^(\{"level":"info","time":)"[^"]*"/, `$1"${time}"`);

t.test('AuditLog.write: one line per event, shaped like a pino line', async (t) => {
  const s = sink();
  const logger = createLogger({ level: 'info', destination: s.stream });
  const audit = new AuditLog(logger);
  const before = Date.now();
  for (const e of EVENTS) audit.write(e);
  const after = Date.now();
  const lines = s.lines();
  t.equal(lines.length, EVENTS.length, 'one line per event');
  for (const [i, line] of lines.entries()) {
    const o = JSON.parse(line) as Record<string, unknown>;
    t.same(Object.keys(o), ['level', 'time', 'service', 'kind', 'audit', 'msg'], `line ${i}: pino's field order`);
    t.match(o, { level: 'info', service: 'keyhole', kind: 'audit', msg: 'access' }, `line ${i}`);
    const time = o.time as string;
    t.equal(new Date(Date.parse(time)).toISOString(), time, `line ${i}: time is ISO 8601`);
    t.ok(Date.parse(time) >= before && Date.parse(time) <= after, `line ${i}: time is now`);
    t.same(o.audit, expected(EVENTS[i]!), `line ${i}: the event`);
    t.equal(line, '{"level":"info","time":"' + time + '","service":"keyhole","kind":"audit","audit":' + JSON.stringify(EVENTS[i]) + ',"msg":"access"}');
  }
  // Byte for byte what pino writes for { kind, audit } and 'access', time aside.
  for (const e of EVENTS) {
    const ours = pinoLine((x) => audit.write(x), s.lines, e);
    const theirs = pinoLine((x) => logger.info({ kind: 'audit', audit: x }, 'access'), s.lines, e);
    t.equal(withTime(ours, 'T'), withTime(theirs, 'T'), `event ${e.id}: the line pino would write`);
  }
});

t.test("AuditLog.write carries a child logger's fields and ignores the log level", async (t) => {
  const s = sink();
  const worker = createLogger({ level: 'error', destination: s.stream }).child({ worker: 3 });
  const audit = new AuditLog(worker);
  worker.info('not at level error');
  t.equal(s.lines().length, 0, 'an info line is filtered at level error');
  audit.write(EVENTS[0]!);
  const lines = s.lines();
  t.equal(lines.length, 1, 'the audit line is written at level error');
  t.match(JSON.parse(lines[0]!), { level: 'info', service: 'keyhole', worker: 3, kind: 'audit', msg: 'access', audit: EVENTS[0] });
  const pinoWorker = createLogger({ level: 'info', destination: s.stream }).child({ worker: 3 });
  pinoWorker.info({ kind: 'audit', audit: EVENTS[0] }, 'access');
  t.equal(withTime(lines[0]!, 'T'), withTime(s.lines().at(-1)!, 'T'), "the child's line as pino writes it");
});

t.test('AuditLog.write hands each event to the sink, with or without a logger', async (t) => {
  const pushed: AuditEvent[] = [];
  const stream: AuditSink = { push: (e) => pushed.push(e), close: () => Promise.resolve() };
  const s = sink();
  new AuditLog(createLogger({ level: 'info', destination: s.stream }), stream).write(EVENTS[1]!);
  new AuditLog(undefined, stream).write(EVENTS[2]!);
  t.equal(pushed[0], EVENTS[1], 'the event object itself');
  t.equal(pushed[1], EVENTS[2], 'no logger: the sink still gets it');
  t.equal(s.lines().length, 1, 'no logger: no line anywhere');
});
