// A real Keyhole in its own process, for counting what only a process can tell about
// itself: file descriptors, RSS, heap after GC, active handles, event-loop delay.
// Started by child.ts with --expose-gc; talks over the IPC channel.
import { readdirSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseConfig } from '../../../src/config/load.ts';
import { createLogger } from '../../../src/observe/logger.ts';
import { createRuntime } from '../../../src/runtime.ts';
import { KeyholeServer } from '../../../src/server/server.ts';

export interface ChildStats {
  rss: number;
  heapUsed: number;
  fds: number;
  handles: number;
  sockets: number;
  eldP99Ms: number;
  eldMaxMs: number;
}

const config = parseConfig(process.env.KEYHOLE_CHILD_YAML!, { env: process.env });
const logger = createLogger({ level: config.log.level });
const runtime = await createRuntime(config, { logger });
const server = new KeyholeServer(runtime);
const where = await server.listen();
const eld = monitorEventLoopDelay({ resolution: 10 });
eld.enable();

const gc = (globalThis as { gc?: () => void }).gc;

async function stats(): Promise<ChildStats> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setImmediate(r));
  }
  const handles = (process as unknown as { _getActiveHandles(): object[] })._getActiveHandles();
  const s: ChildStats = {
    rss: process.memoryUsage.rss(),
    heapUsed: process.memoryUsage().heapUsed,
    fds: readdirSync('/proc/self/fd').length,
    handles: handles.length,
    sockets: handles.filter((h) => h.constructor.name === 'Socket' || h.constructor.name === 'TLSSocket').length,
    eldP99Ms: eld.percentile(99) / 1e6,
    eldMaxMs: eld.max / 1e6,
  };
  eld.reset();
  return s;
}

process.on('message', (m: { type: string; id?: number }) => {
  if (m.type === 'stats') void stats().then((s) => process.send!({ type: 'stats', id: m.id, stats: s }));
  if (m.type === 'close') {
    void server.close(500).then(() => process.exit(0));
  }
});
process.on('disconnect', () => process.exit(0));
process.send!({ type: 'ready', port: where.data.port });
