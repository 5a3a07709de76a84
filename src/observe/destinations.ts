// Where log lines and audit lines go (the `log` section): stdout, or a file each, so the
// audit trail can be shipped and kept on its own. One writer per target per process: the
// logger made at start-up and every audit log a reload builds share it, so a reload never
// opens a file twice and the audit chain of a destination goes on (src/observe/audit-chain.ts).
import cluster from 'node:cluster';
import type { Secret } from '../config/secret.ts';
import type { AuditChainOptions } from './audit-chain.ts';
import type { AuditLogOptions } from './audit.ts';
import { LineWriter } from './line-writer.ts';

/** `stdout`, or the absolute path of a file to append to */
export type LogTarget = string;

/** The `log` section, as much of it as the destinations and the audit chain need. */
export interface LogSettings {
  /** false: no audit line at all, so no audit destination is opened */
  audit?: boolean | undefined;
  destination: LogTarget;
  /** undefined: with the other log lines */
  auditDestination?: LogTarget | undefined;
  auditChain: {
    signingKey?: Secret | undefined;
    checkpointEvery: number;
    checkpointInterval: number;
  };
}

const open = new Map<LogTarget, LineWriter>();

/**
 * The writer for `target`, opened on first use and shared after. `shared`: cluster processes
 * write to the same stdout (whole lines per write to a pipe); a file is opened O_APPEND by
 * each process, whose writes of whole lines never mix. Throws when the file cannot be opened.
 */
export function logDestination(target: LogTarget, opts: { shared?: boolean } = {}): LineWriter {
  let writer = open.get(target);
  if (writer === undefined) {
    writer = target === 'stdout' ? new LineWriter({ fd: 1, shared: opts.shared ?? cluster.isWorker }) : openFile(target);
    open.set(target, writer);
  }
  return writer;
}

function openFile(path: string): LineWriter {
  try {
    return new LineWriter({ path });
  } catch (err) {
    throw new Error(`log destination ${path} cannot be opened (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
}

export interface LogDestinations {
  /** operational log lines (the logger's destination) */
  logs: LineWriter;
  /** audit lines, when they go elsewhere than `logs`; undefined: to `logs`, through the logger */
  audit: LineWriter | undefined;
}

/** The writers the `log` section names (opened on first use, then shared). */
export function openLogDestinations(log: Pick<LogSettings, 'destination' | 'auditDestination'>, opts: { shared?: boolean } = {}): LogDestinations {
  const logs = logDestination(log.destination, opts);
  const auditTarget = log.auditDestination ?? log.destination;
  return { logs, audit: auditTarget === log.destination ? undefined : logDestination(auditTarget, opts) };
}

/**
 * What `new AuditLog(logger, sink, …)` takes from the `log` section: a destination of its
 * own when `log.auditDestination` names another place than the logs, and the chain settings.
 */
export function auditLogOptions(log: LogSettings): AuditLogOptions & { chain: AuditChainOptions } {
  const auditTarget = log.auditDestination ?? log.destination;
  return {
    destination: auditTarget === log.destination || log.audit === false ? undefined : logDestination(auditTarget),
    chain: { signingKey: log.auditChain.signingKey?.reveal(), every: log.auditChain.checkpointEvery, intervalMs: log.auditChain.checkpointInterval },
  };
}
