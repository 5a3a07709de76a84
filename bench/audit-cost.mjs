// CPU µs per audit line, pinned to one core as Keyhole is in the bench: the audit log as built
// (AuditLog → LineWriter: one write(2) per 64 KiB batch from the main thread) beside the
// writer it replaced (pino.destination: sonic-boom, asynchronous, thread-pool writes of at
// most 4 KiB) and sonic-boom's synchronous mode. process.cpuUsage counts every thread, the
// thread pool's too. Usage: taskset -c 0 node bench/audit-cost.mjs [BUILD_DIR=bench/.work/build]
import pino from 'pino';
import { existsSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const build = resolve(process.argv[2] ?? 'bench/.work/build');
/** The first of the build's module paths that exists (the src/ layout moves between commits). */
const mod = (...paths) => {
  const found = paths.map((p) => `${build}/${p}`).find((f) => existsSync(f));
  if (!found) throw new Error(`none of ${paths.join(', ')} in ${build}`);
  return import(pathToFileURL(found).href);
};
const { createLogger } = await mod('observe/logger.js');
const { AuditLog } = await mod('observe/audit.js');
const { LineWriter } = await mod('observe/line-writer.js');
const N = 200_000;
const OUT = `${build}/../audit-cost.log`;
const event = (i) => ({ id: '7f2cdcdb-2cbe-4769-a06b-595476a0a50b', sub: `user${i % 1024}`, org: undefined, provider: 'upstream', uri: 'https://data.bench/obj/1k', decision: 'allow', reason: 'ok', status: 200, bytes: 1024, aborted: false, ms: 1.3, client: '127.0.0.1', tokenSource: 'header' });
const variants = {
  'as built: LineWriter, 64 KiB batches, main thread': () => new LineWriter({ fd: pino.destination({ dest: OUT, sync: true }).fd }),
  'before: sonic-boom async, minLength 2 KiB, maxWrite 4 KiB': () => pino.destination({ dest: OUT, sync: false, minLength: 2048, maxWrite: 4096 }),
  'sonic-boom sync, minLength 2 KiB': () => pino.destination({ dest: OUT, sync: true, minLength: 2048, maxWrite: 4096 }),
};
for (let round = 0; round < 2; round++) {
  for (const [name, make] of Object.entries(variants)) {
    const destination = make();
    const audit = new AuditLog(createLogger({ level: 'info', destination }));
    for (let i = 0; i < 20_000; i++) audit.write(event(i));
    await new Promise((r) => setTimeout(r, 50));
    const c0 = process.cpuUsage();
    for (let i = 0; i < N; i++) {
      audit.write(event(i));
      if (i % 64 === 0) await new Promise((r) => setImmediate(r)); // an event loop turn now and then, as in a server
    }
    await new Promise((r) => destination.flush(() => r()));
    const c = process.cpuUsage(c0);
    if (round === 1) console.log(`${name.padEnd(60)} ${((c.user + c.system) / N).toFixed(2)} µs CPU per audit line`);
  }
}
rmSync(OUT, { force: true });
