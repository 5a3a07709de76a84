// A cluster worker: one KeyholeInstance on the data listeners shared with the other
// workers, started from the config text the primary checked, with every revocation the
// group made so far; it then does what the primary relays (revoke, reload, metrics, drain).
import cluster from 'node:cluster';
import { dirname, resolve } from 'node:path';
import { ConfigError, formatProblem, parseConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { createServeLogger, drainThenExit, KeyholeInstance } from './instance.ts';
import { primaryInbox, sendToPrimary, type ToWorker } from './ipc.ts';
import { applyRelayed, joinGroupRevocations, LogoutsThroughPrimary } from './revocation-fanout.ts';

export async function runWorker(file: string): Promise<void> {
  // Everything from the primary first: the config text it checked, and every revocation.
  const inbox = primaryInbox();
  sendToPrimary({ kh: 'hello' });
  const start = await inbox.started;

  const baseDir = dirname(resolve(file));
  let yaml = start.yaml;
  let config: Config;
  try {
    config = parseConfig(yaml, { baseDir });
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems.map(formatProblem) : [String((err as Error).message)];
    sendToPrimary({ kh: 'fatal', problems });
    process.exit(2);
  }
  const logger = createServeLogger(config.log, { shared: true }).child({ worker: cluster.worker?.id });
  // A reload re-parses the text the primary relayed last, not the file.
  const instance = await KeyholeInstance.create(config, { configFile: file, loadConfig: () => parseConfig(yaml, { baseDir }), logger, cluster: true });
  const logouts = new LogoutsThroughPrimary();
  await joinGroupRevocations(instance.runtime.revocation, start, logouts);

  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ why }, 'stop requested');
    drainThenExit(instance, logger);
  };

  const onMessage = async (m: ToWorker): Promise<void> => {
    switch (m.kh) {
      case 'logged-out':
        logouts.answered(m);
        return;
      case 'revoke':
        try {
          await applyRelayed(instance.runtime.revocation, m);
          sendToPrimary({ kh: 'ack', seq: m.seq });
        } catch (err) {
          sendToPrimary({ kh: 'ack', seq: m.seq, error: (err as Error).message });
        }
        return;
      case 'reload': {
        yaml = m.yaml;
        const result = await instance.reload();
        if (!result.ok) instance.rotateCertificate('reload');
        sendToPrimary({ kh: 'ack', seq: m.seq, result });
        return;
      }
      case 'metrics':
        sendToPrimary({ kh: 'ack', seq: m.seq, metrics: await instance.runtime.metrics.registry.getMetricsAsJSON() });
        return;
      case 'drain':
        stop('primary asked');
        return;
      case 'start':
        return;
    }
  };
  inbox.handle((m) => void onMessage(m));

  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // The primary relays reloads; a SIGHUP sent to a worker alone re-applies what it has.
  process.on('SIGHUP', () => void instance.reload());
  process.on('disconnect', () => stop('primary gone'));

  const where = await instance.listenData();
  sendToPrimary({ kh: 'listening', data: where.data, ...(where.redirect ? { redirect: where.redirect } : {}) });
  logger.info({ pid: process.pid, data: where.data }, 'worker listening');
}
