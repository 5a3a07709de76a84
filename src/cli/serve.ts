// `keyhole serve`: load and check the config (every problem listed, nothing listens on a
// bad one), build the runtime, listen, then handle SIGHUP (reload) and SIGTERM (drain).
import { ConfigError, formatProblem, loadConfigFile } from '../config/load.js';
import { defaultConfig, SAMPLES_DIR } from '../config/default.js';
import type { Config } from '../config/schema.js';
import { signDevToken } from '../auth/sign.js';
import { createLogger } from '../observe/logger.js';
import { createRuntime } from '../server/runtime.js';
import { KeyholeServer } from '../server/server.js';
import { readdirSync } from 'node:fs';

export interface ServeOptions {
  config?: string;
  certDir?: string;
  port?: number;
  adminPort?: number;
}

function load(opts: ServeOptions): Config {
  return opts.config ? loadConfigFile(opts.config) : defaultConfig({ certDir: opts.certDir, port: opts.port, adminPort: opts.adminPort });
}

export async function serve(opts: ServeOptions): Promise<KeyholeServer> {
  let config: Config;
  try {
    config = load(opts);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`keyhole: configuration has ${err.problems.length} problem(s):\n${err.problems.map((p) => `  ${formatProblem(p)}`).join('\n')}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger({ level: config.log.level });
  if (config.server.insecurePlainHttp) {
    logger.warn('server.insecurePlainHttp is on: data routes are served WITHOUT TLS; only behind a mesh that terminates mTLS');
  }
  const runtime = await createRuntime(config, { logger });
  let server: KeyholeServer;
  const reload = async (): Promise<{ ok: boolean; problems?: string[] }> => {
    if (!opts.config) return { ok: false, problems: ['the embedded default cannot be reloaded; start with --config FILE'] };
    try {
      const next = loadConfigFile(opts.config);
      const rt = await createRuntime(next, { logger });
      const previous = server.swap(rt);
      server.reloadTls();
      // In-flight requests hold their own runtime reference; close the old pools after them.
      setTimeout(() => void previous.close(), next.server.timeouts.request).unref();
      logger.info({ providers: next.providers.length }, 'configuration reloaded');
      return { ok: true };
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems.map(formatProblem) : [String((err as Error).message)];
      logger.error({ problems }, 'reload refused: the running configuration stays');
      return { ok: false, problems };
    }
  };
  server = new KeyholeServer(runtime, { reload });
  const where = await server.listen();
  logger.info({ data: where.data, admin: where.admin, redirect: where.redirect, providers: config.providers.map((p) => `${p.name}:${p.kind}`) }, 'keyhole listening');

  process.on('SIGHUP', () => void reload());
  const stop = (signal: string) => {
    logger.info({ signal }, 'draining');
    server.close().then(
      () => {
        logger.flush();
        process.exit(0);
      },
      (err) => {
        logger.error({ err }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));

  if (!opts.config) await printDevHints(config, where.data.port);
  return server;
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
      '  npx keyhole token --sub alice --scope local://samples/',
      '',
      'A working URL (token valid for one hour):',
      `  https://localhost:${port}/v1/data?uri=${uri}&token=${token}`,
      '',
      'With curl:',
      `  curl --cacert certs/ca.pem -H "Authorization: Bearer $(npx keyhole token --sub alice --scope local://samples/)" "https://localhost:${port}/v1/data?uri=${encodeURIComponent('local://samples/hello.txt')}"`,
      '',
    ].join('\n'),
  );
}
