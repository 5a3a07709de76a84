// CPU µs per audit line: Keyhole's audit logger as built vs variants (no redaction, epoch
// time, a bigger sonic-boom minLength, a hand-built JSON line), each writing N lines to a
// real file. Evidence for the audit path's cost at 1 KiB; pin it: taskset -c 0 node …
// Usage: node bench/audit-cost.mjs [BUILD_DIR=bench/.work/build]
import pino from 'pino';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const build = resolve(process.argv[2] ?? 'bench/.work/build');
const { createLogger } = await import(pathToFileURL(`${build}/observe/logger.js`).href);
const { AuditLog } = await import(pathToFileURL(`${build}/observe/audit.js`).href);
const N = 100_000;
const OUT = `${build}/../audit-cost.log`;
const event = (i) => ({ id: '7f2cdcdb-2cbe-4769-a06b-595476a0a50b', sub: `user${i % 1024}`, org: undefined, provider: 'upstream', uri: 'https://data.bench/obj/1k', decision: 'allow', reason: 'ok', status: 200, bytes: 1024, aborted: false, ms: 1.3, client: '127.0.0.1', tokenSource: 'header' });
function dest(minLength) { return pino.destination({ dest: OUT, sync: false, minLength, maxWrite: Math.max(16384, minLength * 2) }); }
const variants = {
  'as built (redact, isoTime, minLength 4 KiB)': () => createLogger({ level: 'info', destination: dest(4096) }),
  'no redaction': () => pino({ level: 'info', base: { service: 'keyhole' }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (l) => ({ level: l }) } }, dest(4096)),
  'no redaction, epochTime': () => pino({ level: 'info', base: { service: 'keyhole' }, timestamp: pino.stdTimeFunctions.epochTime, formatters: { level: (l) => ({ level: l }) } }, dest(4096)),
  'no redaction, epochTime, minLength 32 KiB': () => pino({ level: 'info', base: { service: 'keyhole' }, timestamp: pino.stdTimeFunctions.epochTime, formatters: { level: (l) => ({ level: l }) } }, dest(32768)),
  'as built but minLength 32 KiB': () => createLogger({ level: 'info', destination: dest(32768) }),
};
// A hand-built line straight into the same sonic-boom: what an audit writer without pino's generic path costs.
class LineAudit {
  constructor(stream) { this.stream = stream; }
  write(e) {
    this.stream.write(`{"level":"info","time":${Date.now()},"service":"keyhole","kind":"audit","audit":{"id":"${e.id}","sub":${JSON.stringify(e.sub)},"provider":${JSON.stringify(e.provider)},"uri":${JSON.stringify(e.uri)},"decision":"${e.decision}","reason":"${e.reason}","status":${e.status},"bytes":${e.bytes},"aborted":${e.aborted},"ms":${e.ms},"client":${JSON.stringify(e.client)},"tokenSource":"${e.tokenSource}"},"msg":"access"}\n`);
  }
}
{
  for (let round = 0; round < 2; round++) {
    const stream = dest(4096);
    const audit = new LineAudit(stream);
    for (let i = 0; i < 20000; i++) audit.write(event(i));
    const c0 = process.cpuUsage();
    for (let i = 0; i < N; i++) { audit.write(event(i)); if (i % 256 === 0) await new Promise((r) => setImmediate(r)); }
    await new Promise((r) => stream.flush(() => r()));
    const c = process.cpuUsage(c0);
    if (round === 1) console.log(`${'hand-built JSON line, same sonic-boom'.padEnd(46)} ${((c.user + c.system) / N).toFixed(2)} µs CPU per audit line`);
  }
}
for (let round = 0; round < 2; round++) {
  for (const [name, make] of Object.entries(variants)) {
    const logger = make();
    const audit = new AuditLog(logger.child({ kind: 'audit' }));
    for (let i = 0; i < 20000; i++) audit.write(event(i));
    await new Promise((r) => setTimeout(r, 50));
    const c0 = process.cpuUsage();
    for (let i = 0; i < N; i++) {
      audit.write(event(i));
      if (i % 256 === 0) await new Promise((r) => setImmediate(r)); // let sonic-boom's writes complete, as in a server
    }
    await new Promise((r) => logger.flush ? logger.flush(() => r()) : r());
    const c = process.cpuUsage(c0);
    if (round === 1) console.log(`${name.padEnd(46)} ${((c.user + c.system) / N).toFixed(2)} µs CPU per audit line`);
  }
}
