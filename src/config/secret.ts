// A credential read from `${env:NAME}` or `${file:/path}`. It never prints itself, so a
// config object can be logged or inspected without leaking what it holds.
import { inspect } from 'node:util';

export class Secret {
  private readonly value: string;
  readonly source: string;
  constructor(
    value: string,
    /** where it came from, e.g. `env:DATA_PASS`: safe to log */
    source: string,
  ) {
    this.value = value;
    this.source = source;
  }

  reveal(): string {
    return this.value;
  }

  toString(): string {
    return `[secret ${this.source}]`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

const REFERENCE = /^\$\{(env|file):([^}]+)\}$/;

export interface ReferenceProblem {
  path: (string | number)[];
  message: string;
}

/**
 * Replaces every `${env:…}` / `${file:…}` string in a parsed YAML tree by a Secret, and
 * collects one problem per reference that cannot be read. Relative file paths are
 * taken from `baseDir` (the config file's folder).
 */
export function resolveReferences(
  node: unknown,
  baseDir: string,
  readFile: (path: string) => string,
  env: NodeJS.ProcessEnv,
  path: (string | number)[] = [],
  problems: ReferenceProblem[] = [],
): { value: unknown; problems: ReferenceProblem[] } {
  if (typeof node === 'string') {
    const m = REFERENCE.exec(node.trim());
    if (!m) return { value: node, problems };
    const [, kind, target] = m as unknown as [string, 'env' | 'file', string];
    if (kind === 'env') {
      const v = env[target];
      if (v === undefined || v === '') {
        problems.push({ path, message: `environment variable ${target} is not set` });
        return { value: new Secret('', `env:${target}`), problems };
      }
      return { value: new Secret(v, `env:${target}`), problems };
    }
    const file = target.startsWith('/') ? target : `${baseDir}/${target}`;
    try {
      // Secret files conventionally end with a newline that is not part of the secret.
      return { value: new Secret(readFile(file).replace(/\r?\n$/, ''), `file:${target}`), problems };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      problems.push({ path, message: `file ${file} cannot be read (${code})` });
      return { value: new Secret('', `file:${target}`), problems };
    }
  }
  if (Array.isArray(node)) {
    return { value: node.map((v, i) => resolveReferences(v, baseDir, readFile, env, [...path, i], problems).value), problems };
  }
  if (node !== null && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) out[k] = resolveReferences(v, baseDir, readFile, env, [...path, k], problems).value;
    return { value: out, problems };
  }
  return { value: node, problems };
}
