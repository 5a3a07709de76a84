// Runs the real CLI (src/cli.ts through tsx, as the tests run) as a child process, as ops and scripts do.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Node arguments that run the CLI from source: `node ...CLI_ARGS serve …`. Through tsx, as the tap processes run (.taprc says why). */
export const CLI_ARGS = ['--import', 'tsx', join(process.cwd(), 'src', 'cli.ts')];

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `env` is added to this process's; a name set to undefined is taken out. */
export function runCli(args: string[], opts: { env?: Record<string, string | undefined>; input?: string | Buffer; cwd?: string } = {}): CliResult {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const r = spawnSync(process.execPath, [...CLI_ARGS, ...args], { cwd: opts.cwd ?? process.cwd(), env, input: opts.input ?? '', encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const made: string[] = [];
process.once('exit', () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A temporary folder, removed when the test process exits. */
export function tmpDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `keyhole-cli-${name}-`));
  made.push(dir);
  return dir;
}
