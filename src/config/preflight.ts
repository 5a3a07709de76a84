// What serve checks before it listens beyond the schema: files (certificates and keys, and
// that each pair belongs together; CA bundles; folders; log destinations), names and
// prefixes used twice, and each provider's own validation (building it, as serve does).
// Run on the tree as written (references resolved), section by section, whether or not the
// rest of the file passed the schema: one pass lists every problem of the file.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { authSchema } from '../auth/schema.ts';
import { createProvider, providerSchema } from '../providers/kinds.ts';
import { parseContext } from './blocks.ts';
import { checkAuthKeys, formatPath, type Problem } from './problems.ts';

type Tree = Record<string, unknown>;

export function preflightProblems(tree: unknown, baseDir: string): Problem[] {
  const root = record(tree);
  const problems: Problem[] = [];
  const file = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  const attempt = (path: string, fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      problems.push({ path, message: firstLine(err) });
    }
  };

  // Every `tls: { cert, key, ca }` in the file: the server's, upstreams', Redis', the app's.
  walk(root, [], (path, node) => {
    if (path.at(-1) !== 'tls') return;
    const at = formatPath(path);
    const read = (name: 'cert' | 'key' | 'ca'): Buffer | undefined => {
      const p = node[name];
      if (typeof p !== 'string' || p === '') return undefined;
      try {
        return readFileSync(file(p));
      } catch (err) {
        problems.push({ path: `${at}.${name}`, message: `cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? firstLine(err)}` });
        return undefined;
      }
    };
    const cert = read('cert');
    const key = read('key');
    const ca = read('ca');
    const parse = <T>(name: string, what: string, fn: () => T): T | undefined => {
      try {
        return fn();
      } catch (err) {
        problems.push({ path: `${at}.${name}`, message: `${String(node[name])} is not ${what} (${firstLine(err)})` });
        return undefined;
      }
    };
    const x509 = cert && parse('cert', 'a PEM certificate', () => new X509Certificate(cert));
    const privateKey = key && parse('key', 'a PEM private key', () => createPrivateKey(key));
    if (x509 && privateKey && !x509.checkPrivateKey(privateKey)) {
      problems.push({ path: at, message: `the key (${String(node.key)}) does not belong to the certificate (${String(node.cert)})` });
    }
    if (ca) parse('ca', 'a PEM CA certificate', () => new X509Certificate(ca));
  });

  const auth = authSchema.safeParse(root.auth);
  if (auth.success) problems.push(...checkAuthKeys(auth.data.keys));

  const log = record(root.log);
  for (const name of ['destination', 'auditDestination'] as const) {
    const target = log[name];
    if (typeof target === 'string' && target !== 'stdout' && target !== '') attempt(`log.${name}`, () => writable(file(target)));
  }

  if (record(root.revocation).store === 'redis' && root.redis === undefined) {
    problems.push({ path: 'redis', message: 'revocation.store redis needs the top-level redis: section' });
  }

  const list = Array.isArray(root.providers) ? root.providers : [];
  const names = new Map<string, number>();
  const matches = new Map<string, number>();
  list.forEach((raw: unknown, i) => {
    parseContext.baseDir = baseDir;
    const parsed = providerSchema.safeParse(raw);
    if (!parsed.success) return; // the schema's problems are reported already
    const cfg = parsed.data;
    // Compared as parsed: a match prefix is canonical there (S3://B/ and s3://b/ are one).
    if (names.has(cfg.name)) problems.push({ path: `providers[${i}].name`, message: `duplicate of providers[${names.get(cfg.name)}].name` });
    else names.set(cfg.name, i);
    if (matches.has(cfg.match)) problems.push({ path: `providers[${i}].match`, message: `same prefix as providers[${matches.get(cfg.match)}]` });
    else matches.set(cfg.match, i);
    const before = problems.length;
    if (cfg.kind === 'local') attempt(`providers[${i}].root`, () => folder(cfg.root));
    // The provider's own validation, as serve builds it (no network: identities are asked later).
    if (problems.length === before) attempt(`providers[${i}]`, () => void createProvider(cfg).close().catch(() => {}));
  });
  return problems;
}

function folder(path: string): void {
  let isFolder: boolean;
  try {
    isFolder = statSync(path).isDirectory();
  } catch (err) {
    throw new Error(`folder ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? firstLine(err)})`, { cause: err });
  }
  if (!isFolder) throw new Error(`${path} is not a folder`);
}

/** A log file Keyhole can append to: the file if it exists, else its folder. */
function writable(path: string): void {
  let exists = true;
  try {
    if (statSync(path).isDirectory()) throw new Error(`${path} is a folder, not a file`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    exists = false;
  }
  const target = exists ? path : dirname(path);
  try {
    accessSync(target, constants.W_OK);
  } catch (err) {
    throw new Error(`${exists ? path : `folder ${target}`} cannot be written (${(err as NodeJS.ErrnoException).code ?? firstLine(err)})`, { cause: err });
  }
}

function walk(node: unknown, path: (string | number)[], visit: (path: (string | number)[], node: Tree) => void): void {
  if (Array.isArray(node)) node.forEach((v, i) => walk(v, [...path, i], visit));
  else if (node !== null && typeof node === 'object') {
    visit(path, node as Tree);
    for (const [k, v] of Object.entries(node)) walk(v, [...path, k], visit);
  }
}

function record(v: unknown): Tree {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Tree) : {};
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? String(err);
}
