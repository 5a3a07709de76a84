// Reads a YAML file into a validated Config. Every problem is reported with its path,
// all at once, before anything listens: references that cannot be read, schema errors,
// then checks that need the file system (certificates, keys, folders).
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { MIN_HMAC_BYTES } from '../auth/keys.js';
import { configSchema, type Config } from './schema.js';
import { resolveReferences } from './secret.js';
import { parseContext } from './types.js';

export interface Problem {
  path: string;
  message: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: Problem[]) {
    super(`invalid configuration:\n${problems.map(formatProblem).join('\n')}`);
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
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }]);
  }
  return parseConfig(text, { baseDir: dirname(resolve(file)), ...opts });
}

export function parseConfig(yamlText: string, opts: LoadOptions = {}): Config {
  const doc = parseDocument(yamlText, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => ({ path: '', message: `YAML: ${e.message.split('\n')[0]}` })));
  }
  return validateConfig(doc.toJS(), opts);
}

export function validateConfig(tree: unknown, opts: LoadOptions = {}): Config {
  const baseDir = opts.baseDir ?? process.cwd();
  const { value, problems: refProblems } = resolveReferences(tree ?? {}, baseDir, (p) => readFileSync(p, 'utf8'), opts.env ?? process.env);
  const problems: Problem[] = refProblems.map((p) => ({ path: formatPath(p.path), message: p.message }));
  // A reference that could not be read is reported once, by what it could not read.
  const refPaths = new Set(problems.map((p) => p.path));

  parseContext.baseDir = baseDir;
  const parsed = configSchema.safeParse(value);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      for (const p of issueProblems(issue)) if (!refPaths.has(p.path)) problems.push(p);
    }
  }
  if (parsed.success && problems.length === 0) problems.push(...checkFiles(parsed.data));
  if (problems.length > 0) throw new ConfigError(problems);
  return parsed.data!;
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
  cfg.auth.keys.forEach((k, i) => {
    if ('secret' in k && Buffer.byteLength(k.secret.reveal()) < MIN_HMAC_BYTES) {
      problems.push({ path: `auth.keys[${i}].secret`, message: `HMAC secret must be at least ${MIN_HMAC_BYTES} bytes` });
    }
    if ('publicKey' in k) attempt(`auth.keys[${i}].publicKey`, () => createPublicKey(readFileSync(k.publicKey)));
  });
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
