// `keyhole serve`: load and check the config (every problem listed, nothing listens on a
// bad one), then run one process, or a cluster primary and its workers (`workers:`).
// SIGHUP reloads the config and certificates; SIGTERM/SIGINT drain, then exit 0.
import cluster from 'node:cluster';
import { readdirSync } from 'node:fs';
import { ConfigError, formatProblem } from '../config/load.ts';
import { defaultConfig, SAMPLES_DIR } from '../config/default.ts';
import { configWarnings } from '../config/warnings.ts';
import type { Config } from '../config/schema.ts';
import { signDevToken } from '../auth/sign.ts';
import { createServeLogger, drainThenExit, KeyholeInstance } from '../process/instance.ts';
import { runPrimary, workerCount } from '../process/primary.ts';
import { readConfig } from '../process/reload.ts';
import { runWorker } from '../process/worker.ts';

export interface ServeOptions {
  config?: string;
  certDir?: string;
  port?: number;
  adminPort?: number;
}

/** The config, and the YAML text it was parsed from (what cluster workers start from). */
async function load(opts: ServeOptions): Promise<{ config: Config; yaml?: string }> {
  if (!opts.config) return { config: await defaultConfig({ certDir: opts.certDir, port: opts.port, adminPort: opts.adminPort }) };
  return readConfig(opts.config);
}

async function loadOrExit(opts: ServeOptions): Promise<{ config: Config; yaml?: string }> {
  try {
    return await load(opts);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`keyhole: configuration has ${err.problems.length} problem(s):\n${err.problems.map((p) => `  ${formatProblem(p)}`).join('\n')}\n`);
      process.exit(2);
    }
    throw err;
  }
}

export async function serve(opts: ServeOptions): Promise<void> {
  if (cluster.isWorker) return runWorker(opts.config!);
  const { config, yaml } = await loadOrExit(opts);
  const workers = workerCount(config.workers);
  const clustered = workers > 1 && opts.config !== undefined && yaml !== undefined;
  const logger = createServeLogger(config.log, { shared: clustered });
  // The same list check-config prints (server.insecurePlainHttp among them). The embedded
  // default is for a quick look on loopback: its warnings would only be noise.
  if (opts.config) for (const w of configWarnings(config)) logger.warn({ path: w.path }, `${w.path}: ${w.message}`);
  if (clustered) return runPrimary(opts.config!, yaml!, config, logger, workers);
  if (workers > 1) logger.warn('workers > 1 needs --config FILE; the embedded default runs in one process');

  const instance = await KeyholeInstance.create(config, { logger, ...(opts.config ? { configFile: opts.config } : {}) });
  const where = await instance.listen();
  logger.info(
    { data: where.data, admin: where.admin, redirect: where.redirect, workers: 1, providers: config.providers.map((p) => `${p.name}:${p.kind}`), certificate: instance.server.certificate },
    'keyhole listening',
  );
  logger.flush();

  // A refused reload still picks up rotated certificate files named by the running config.
  process.on('SIGHUP', () => void instance.reload().then((r) => r.ok || instance.rotateCertificate('SIGHUP')));
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal during the drain: exiting now');
      logger.flush();
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stop requested');
    drainThenExit(instance, logger);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  if (!opts.config) await printDevHints(config, where.data.port);
}

async function printDevHints(config: Config, port: number): Promise<void> {
  const token = await signDevToken(config, { sub: 'dev-user', scope: ['local://samples/'], ttlSeconds: 3600 });
  const sample = readdirSync(SAMPLES_DIR).find((f) => f.endsWith('.png')) ?? 'hello.txt';
  const uri = encodeURIComponent(`local://samples/${sample}`);
  process.stderr.write(
    [
      '',
      `Keyhole is running on the embedded default (development only): https://localhost:${port}`,
      'Dev certificates, HS256 secret and admin token are in certs/ (CA: certs/ca.pem).',
      '',
      'Get a token:',
      '  ./keyhole token --sub alice --scope local://samples/',
      '',
      'A working URL (token valid for one hour):',
      `  https://localhost:${port}/v1/data?uri=${uri}&token=${token}`,
      '',
      'With curl:',
      `  curl --cacert certs/ca.pem -H "Authorization: Bearer $(./keyhole token --sub alice --scope local://samples/)" "https://localhost:${port}/v1/data?uri=${encodeURIComponent('local://samples/hello.txt')}"`,
      '',
    ].join('\n'),
  );
}
