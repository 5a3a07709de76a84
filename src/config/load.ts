// Reads a YAML file into a validated Config. Every problem is reported with its path,
// all at once, before anything listens: YAML, references that cannot be read, the schema,
// and in the same pass what serve checks on disk (certificate pairs, folders, providers).
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument, type YAMLError } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.ts';
import { resolveReferences } from './secret.ts';
import { parseContext } from './blocks.ts';
import { preflightProblems } from './preflight.ts';
import { closest, keysAt } from './suggest.ts';
import { ConfigError, formatPath, type Problem } from './problems.ts';

export { checkAuthKeys, ConfigError, formatPath, formatProblem, type Problem } from './problems.ts';

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

/**
 * The one check serve, a reload and check-config run: the schema, then what serve checks
 * before it listens (files, pairs, providers: preflight.ts) on every section, in one pass.
 */
export function validateConfig(tree: unknown, opts: LoadOptions = {}): Config {
  const { value, parsed, problems } = checkTree(tree, opts, () => true);
  const reported = new Set(problems.map((p) => p.path));
  for (const p of preflightProblems(value, opts.baseDir ?? process.cwd())) {
    if (!reported.has(p.path)) problems.push(p);
    reported.add(p.path);
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  return parsed.data;
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
  if (doc.errors.length > 0) throw new ConfigError(yamlProblems(text, doc.errors));
  return doc.toJS();
}

/**
 * The parser's errors, each at its line and column. An unquoted `${…}` inside a flow
 * collection (`{ key: ${env:K} }`) is one mistake that the parser reports as a cascade of
 * a dozen: it becomes one problem with the fix, and what follows it on is dropped.
 */
function yamlProblems(text: string, errors: readonly YAMLError[]): Problem[] {
  const lines = text.split('\n');
  const unquoted = lines.findIndex((line) => unquotedFlowReference(line));
  const at = (e: YAMLError): number => e.linePos?.[0].line ?? 0;
  const kept = unquoted < 0 ? errors : errors.filter((e) => at(e) > 0 && at(e) < unquoted + 1);
  const problems = kept.map((e) => {
    const pos = e.linePos?.[0];
    const message = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    return { path: pos ? `line ${pos.line}, column ${pos.col}` : '', message: `YAML: ${message}` };
  });
  if (unquoted >= 0) {
    const ref = /\$\{[^}]*\}?/.exec(lines[unquoted]!)?.[0] ?? '${env:NAME}';
    problems.push({ path: `line ${unquoted + 1}`, message: `YAML: a reference inside { } or [ ] must be quoted: write "${ref}" (an unquoted $, { or } there breaks the rest of the file)` });
  }
  return problems;
}

/** A `${` outside quotes after an unclosed `{` or `[` on the same line. */
function unquotedFlowReference(line: string): boolean {
  let depth = 0;
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === '#' && (i === 0 || line[i - 1] === ' ')) return false;
    else if (c === '"' || c === "'") quote = c;
    else if (c === '$' && line[i + 1] === '{' && depth > 0) return true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return false;
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
    const known = keysAt(configSchema, issue.path);
    return issue.keys.map((k) => {
      const guess = closest(k, known);
      const hint = guess !== undefined ? ` (did you mean ${guess}?)` : known.length > 0 && known.length <= 16 ? ` (known here: ${known.join(', ')})` : '';
      return { path: formatPath([...issue.path, k]), message: `unknown key${hint}` };
    });
  }
  if (issue.code === 'invalid_type' && / received undefined$/.test(issue.message)) {
    const what: Record<string, string> = { object: 'a section (a mapping of keys)', array: 'a list', string: 'a string', number: 'a number', boolean: 'true or false' };
    return [{ path: formatPath(issue.path), message: `missing: ${what[issue.expected] ?? issue.expected} is required here` }];
  }
  return [{ path: formatPath(issue.path), message: issue.message }];
}
