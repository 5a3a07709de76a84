// Parent side of keyhole-child.ts: start a real Keyhole process from YAML, ask it for
// its own counts, stop it.
import { fork, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../../src/config/load.ts';
import type { Config } from '../../../src/config/schema.ts';
import { signDevToken, type TokenRequest } from '../../../src/auth/sign.ts';
import { TEST_SECRET, ADMIN_TOKEN } from '../../helpers/keyhole.ts';
import type { ChildStats } from './keyhole-child.ts';

export interface KeyholeChild {
  port: number;
  pid: number;
  config: Config;
  proc: ChildProcess;
  stats(): Promise<ChildStats>;
  /** open file descriptors of the child, read from outside (/proc/PID/fd) */
  fds(): number;
  token(req: Partial<TokenRequest> & { sub?: string }): Promise<string>;
  close(): Promise<void>;
}

export async function startKeyholeChild(yaml: string, env: Record<string, string> = {}): Promise<KeyholeChild> {
  const fullEnv: Record<string, string | undefined> = { ...process.env, KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN, ...env, KEYHOLE_CHILD_YAML: yaml };
  const config = parseConfig(yaml, { env: fullEnv });
  // Plain node + tsx: the child is measured, not instrumented for coverage.
  const childEnv = { ...fullEnv };
  delete childEnv.NODE_V8_COVERAGE;
  delete childEnv.NODE_OPTIONS;
  const proc = fork(fileURLToPath(new URL('./keyhole-child.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx', '--expose-gc'],
    env: childEnv,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`keyhole child exited with ${code}`)));
    proc.on('message', (m: { type: string; port?: number }) => {
      if (m.type === 'ready') resolve(m.port!);
    });
  });
  let nextId = 0;
  return {
    port,
    pid: proc.pid!,
    config,
    proc,
    stats: () =>
      new Promise((resolve) => {
        const id = ++nextId;
        const on = (m: { type: string; id?: number; stats?: ChildStats }) => {
          if (m.type === 'stats' && m.id === id) {
            proc.off('message', on);
            resolve(m.stats!);
          }
        };
        proc.on('message', on);
        proc.send({ type: 'stats', id });
      }),
    fds: () => readdirSync(`/proc/${proc.pid}/fd`).length,
    token: (req) => signDevToken(config, { sub: 'alice', ...req }),
    close: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.removeAllListeners('exit');
        proc.once('exit', () => resolve());
        proc.send({ type: 'close' });
        setTimeout(() => proc.kill('SIGKILL'), 5000).unref();
      }),
  };
}
