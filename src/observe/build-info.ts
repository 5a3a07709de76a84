// What this Keyhole is: its version (package.json), the Node that runs it and the commit
// it was built from. `keyhole --version` prints it; /metrics has it as keyhole_build_info.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BuildInfo {
  version: string;
  node: string;
  /** the git commit (full hash), or 'unknown' outside a checkout without KEYHOLE_COMMIT */
  commit: string;
}

/** src/observe/build-info.ts or dist/observe/build-info.js → the package root, two levels up. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

let cached: BuildInfo | undefined;

export function buildInfo(): BuildInfo {
  cached ??= { version: packageVersion(), node: process.version, commit: commitOf(process.env.KEYHOLE_COMMIT) };
  return cached;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * KEYHOLE_COMMIT (set by the image build, where there is no .git), else read from the
 * checkout's .git without running git: HEAD, then the ref it names (loose or packed).
 */
function commitOf(fromEnv: string | undefined): string {
  if (fromEnv !== undefined && /^[0-9a-f]{7,64}$/i.test(fromEnv)) return fromEnv.toLowerCase();
  try {
    const git = join(ROOT, '.git');
    const head = readFileSync(join(git, 'HEAD'), 'utf8').trim();
    const ref = /^ref: (refs\/[^\s]+)$/.exec(head)?.[1];
    if (ref === undefined) return /^[0-9a-f]{40,64}$/.test(head) ? head : 'unknown';
    try {
      return readFileSync(join(git, ref), 'utf8').trim();
    } catch {
      const packed = readFileSync(join(git, 'packed-refs'), 'utf8');
      return packed.split('\n').find((l) => l.endsWith(` ${ref}`))?.split(' ')[0] ?? 'unknown';
    }
  } catch {
    return 'unknown';
  }
}
