// Reads a YAML file into a validated Config. Every problem is reported with its path,
// all at once, before anything listens: references that cannot be read, schema errors,
// then checks that need the file system (certificates, keys, folders).
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { MIN_HMAC_BYTES } from '../auth/keys.ts';
import type { KeyConfig } from '../auth/schema.ts';
import { configSchema, type Config } from './schema.ts';
import { resolveReferences } from './secret.ts';
import { parseContext } from './blocks.ts';

export interface Problem {
  path: string;
  message: string;
}

export class ConfigError extends Error {
  readonly problems: Problem[];
  constructor(problems: Problem[]) {
    super(`invalid configuration:\n${problems.map(formatProblem).join('\n')}`);
    this.problems = problems;
  }
}

export function formatProblem(p: Problem): string {
  return p.path ? `${p.path}: ${p.message}` : p.message;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** folder relative paths are resolved against (default: the file's folder) */
  baseDir?: string;
}

export function loadConfigFile(file: string, opts: LoadOptions = {}): Config {
  return validateConfig(readConfigTree(file), { baseDir: dirname(resolve(file)), ...opts });
}

export function parseConfig(yamlText: string, opts: LoadOptions = {}): Config {
  return validateConfig(parseYaml(yamlText), opts);
}

export function validateConfig(tree: unknown, opts: LoadOptions = {}): Config {
  const { parsed, problems } = checkTree(tree, opts, () => true);
  if (parsed.success && problems.length === 0) problems.push(...checkFiles(parsed.data));
  if (problems.length > 0) throw new ConfigError(problems);
  return parsed.data!;
}

/**
 * For commands that read one part of the file (`keyhole token`: auth.keys; `keyhole tasks`:
 * the providers' prefixes). The whole file is checked as check-config checks it, except
 * that a `${env:…}`/`${file:…}` reference that cannot be read is a problem only under one
 * of `needed` (paths such as 'auth.keys'): anywhere else it is a credential the command
 * never uses, and so are the checks that need the disk (left out). Returns the tree with
 * its references resolved, for the command to read its part with that section's schema.
 */
export function loadConfigFileStructure(file: string, needed: readonly string[], opts: LoadOptions = {}): Record<string, unknown> {
  const tree = readConfigTree(file);
  const { value, problems } = checkTree(tree, { baseDir: dirname(resolve(file)), ...opts }, (path) => needed.some((n) => isUnder(path, n)));
  if (problems.length > 0) throw new ConfigError(problems);
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {};
}

function readConfigTree(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }]);
  }
  return parseYaml(text);
}

function parseYaml(text: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => ({ path: '', message: `YAML: ${e.message.split('\n')[0]}` })));
  }
  return doc.toJS();
}

/** `path` is `prefix` or lies below it: auth.keys[0].secret is under auth.keys. */
function isUnder(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(`${prefix}.`) || path.startsWith(`${prefix}[`);
}

/** References resolved, then the schema; `needs(path)` says whether an unreadable reference there is a problem. */
function checkTree(tree: unknown, opts: LoadOptions, needs: (path: string) => boolean) {
  const baseDir = opts.baseDir ?? process.cwd();
  const { value, problems: refProblems } = resolveReferences(tree ?? {}, baseDir, (p) => readFileSync(p, 'utf8'), opts.env ?? process.env);
  const unreadable: Problem[] = refProblems.map((p) => ({ path: formatPath(p.path), message: p.message }));
  const problems = unreadable.filter((p) => needs(p.path));
  // A reference that could not be read is reported once, by what it could not read; one
  // that is not needed silences what the schema says of its empty stand-in too.
  const reported = new Set(problems.map((p) => p.path));
  const unused = unreadable.filter((p) => !needs(p.path)).map((p) => p.path);

  parseContext.baseDir = baseDir;
  const parsed = configSchema.safeParse(value);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      for (const p of issueProblems(issue)) if (!reported.has(p.path) && !unused.some((u) => isUnder(p.path, u))) problems.push(p);
    }
  }
  return { value, parsed, problems };
}

function issueProblems(issue: z.core.$ZodIssue): Problem[] {
  // A union failure names the branch that came closest; flatten to its own issues.
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    const best = issue.errors.reduce((a, b) => (b.length < a.length ? b : a));
    return best.flatMap((sub) => issueProblems({ ...sub, path: [...issue.path, ...sub.path] }));
  }
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => ({ path: formatPath([...issue.path, k]), message: 'unknown key' }));
  }
  return [{ path: formatPath(issue.path), message: issue.message }];
}

/** The auth keys' own checks: HMAC secrets long enough, public key files that parse. */
export function checkAuthKeys(keys: readonly KeyConfig[]): Problem[] {
  const problems: Problem[] = [];
  keys.forEach((k, i) => {
    if ('secret' in k && Buffer.byteLength(k.secret.reveal()) < MIN_HMAC_BYTES) {
      problems.push({ path: `auth.keys[${i}].secret`, message: `HMAC secret must be at least ${MIN_HMAC_BYTES} bytes` });
    }
    if ('publicKey' in k) {
      try {
        createPublicKey(readFileSync(k.publicKey));
      } catch (err) {
        problems.push({ path: `auth.keys[${i}].publicKey`, message: (err as Error).message.split('\n')[0] ?? String(err) });
      }
    }
  });
  return problems;
}

/** Checks that need the disk: certificates parse, keys parse, folders exist. */
function checkFiles(cfg: Config): Problem[] {
  const problems: Problem[] = [];
  const attempt = (path: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      problems.push({ path, message: (err as Error).message.split('\n')[0] ?? String(err) });
    }
  };
  const tls = cfg.server.tls;
  if (tls) {
    attempt('server.tls.cert', () => new X509Certificate(readFileSync(tls.cert)));
    attempt('server.tls.key', () => createPrivateKey(readFileSync(tls.key)));
  }
  problems.push(...checkAuthKeys(cfg.auth.keys));
  const names = new Map<string, number>();
  const matches = new Map<string, number>();
  cfg.providers.forEach((p, i) => {
    if (names.has(p.name)) problems.push({ path: `providers[${i}].name`, message: `duplicate of providers[${names.get(p.name)}].name` });
    names.set(p.name, i);
    if (matches.has(p.match)) problems.push({ path: `providers[${i}].match`, message: `same prefix as providers[${matches.get(p.match)}]` });
    matches.set(p.match, i);
    if (p.kind === 'local') {
      attempt(`providers[${i}].root`, () => {
        if (!statSync(p.root).isDirectory()) throw new Error(`${p.root} is not a folder`);
      });
    }
    if ('tls' in p && p.tls) {
      const t = p.tls;
      for (const f of ['ca', 'cert', 'key'] as const) {
        const file = t[f];
        if (file) attempt(`providers[${i}].tls.${f}`, () => readFileSync(file));
      }
      if (Boolean(t.cert) !== Boolean(t.key)) problems.push({ path: `providers[${i}].tls`, message: 'cert and key go together' });
    }
  });
  return problems;
}
