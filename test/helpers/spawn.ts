// A real `keyhole serve --config FILE` process (through tsx) on ephemeral loopback ports:
// its JSON log lines are collected as they come, the real ports are read from the
// "keyhole listening" line, and teardown kills whatever is still running. `opsYaml` is the
// base config such a process starts from.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import { signDevToken, type TokenRequest } from '../../src/auth/sign.ts';
import { parseConfig } from '../../src/config/load.ts';
import { ADMIN_TOKEN, baseYaml, filesProviderYaml, TEST_SECRET, type BaseYamlOptions, type LogLine } from './keyhole.ts';
import { testCerts } from './certs.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');

export type { LogLine };

export interface KeyholeProcess {
  child: ChildProcess;
  configFile: string;
  logs: LogLine[];
  stderr(): string;
  /** everything it wrote, stdout and stderr, raw: for "no secret in its output" checks */
  output(): string;
  dataPort: number;
  adminPort: number;
  base: string;
  admin: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** resolves with the first log line (already seen or still to come) that matches */
  waitForLog(match: (l: LogLine) => boolean, timeoutMs?: number, what?: string): Promise<LogLine>;
  token(req?: Partial<TokenRequest>): Promise<string>;
  dispatcher: Dispatcher;
  get(path: string, opts?: { headers?: Record<string, string>; dispatcher?: Dispatcher }): Promise<{ status: number; body: Buffer; headers: Record<string, unknown> }>;
  adminPost(path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }>;
  adminGet(path: string): Promise<{ status: number; text: string }>;
  rewriteConfig(yaml: string): void;
  stop(): Promise<void>;
}

export function writeConfig(yaml: string, dir = mkdtempSync(join(tmpdir(), 'keyhole-ops-'))): string {
  const file = join(dir, 'keyhole.yaml');
  writeFileSync(file, yaml);
  return file;
}

export async function spawnKeyhole(yaml: string, opts: { file?: string; env?: Record<string, string>; startTimeoutMs?: number } = {}): Promise<KeyholeProcess> {
  const configFile = opts.file ?? writeConfig(yaml);
  if (opts.file) writeFileSync(opts.file, yaml);
  const env = { ...process.env, KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN, ...opts.env };
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli.ts'), 'serve', '--config', configFile], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  const waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  let pending = '';
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) !== -1) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (!line.trim()) continue;
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        parsed = { level: 'raw', msg: line };
      }
      logs.push(parsed);
      for (const w of [...waiters]) {
        if (w.match(parsed)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(parsed);
        }
      }
    }
  });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => child.once('exit', (code, signal) => resolveExit({ code, signal })));

  const waitForLog = (match: (l: LogLine) => boolean, timeoutMs = 20_000, what = 'log line') => {
    const seen = logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogLine>((resolveLine, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; stderr: ${err.slice(-2000)}; last logs: ${JSON.stringify(logs.slice(-5))}`)), timeoutMs);
      const gone = () => reject(new Error(`keyhole exited while waiting for ${what}; stderr: ${err.slice(-2000)}`));
      child.once('exit', gone);
      waiters.push({
        match,
        resolve: (l) => {
          clearTimeout(timer);
          child.removeListener('exit', gone);
          resolveLine(l);
        },
      });
    });
  };

  const listening = await waitForLog((l) => l.msg === 'keyhole listening', opts.startTimeoutMs ?? 60_000, '"keyhole listening"');
  const dataPort = (listening.data as { port: number }).port;
  const adminPort = (listening.admin as { port: number }).port;
  const base = `https://localhost:${dataPort}`;
  const admin = `http://127.0.0.1:${adminPort}`;
  const dispatcher = new Agent({ connect: { ca: readFileSync(testCerts().caCert) } });
  const config = parseConfig(yaml, { env });

  const proc: KeyholeProcess = {
    child,
    configFile,
    logs,
    stderr: () => err,
    output: () => out + err,
    dataPort,
    adminPort,
    base,
    admin,
    exited,
    waitForLog,
    token: (req = {}) => signDevToken(config, { sub: 'alice', scope: ['local://files/'], ...req }),
    dispatcher,
    async get(path, o = {}) {
      const res = await request(base + path, { headers: o.headers ?? {}, dispatcher: o.dispatcher ?? dispatcher });
      const body = Buffer.from(await res.body.arrayBuffer());
      return { status: res.statusCode, body, headers: res.headers };
    },
    async adminPost(path, body) {
      const res = await request(admin + path, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: body === undefined ? '' : JSON.stringify(body),
      });
      return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
    },
    async adminGet(path) {
      const res = await request(admin + path);
      return { status: res.statusCode, text: await res.body.text() };
    },
    rewriteConfig(next) {
      writeFileSync(configFile, next);
    },
    async stop() {
      await dispatcher.close().catch(() => undefined);
      // Cluster workers this test started: gone with their primary, or killed here.
      for (const l of logs) {
        if (l.msg !== 'worker ready' || typeof l.pid !== 'number') continue;
        try {
          process.kill(l.pid, 'SIGKILL');
        } catch {
          // already exited
        }
      }
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
  return proc;
}

/**
 * The config a spawned Keyhole starts from: the shared base (info logs, no audit lines) with
 * the `files` provider on `root`; `extra` follows it (more providers, more sections).
 */
export function opsYaml(root: string, extra = '', opts: BaseYamlOptions = {}): string {
  return baseYaml(filesProviderYaml(root) + extra, { log: '{ level: info, audit: false }', ...opts });
}
