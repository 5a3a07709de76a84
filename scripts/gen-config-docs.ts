// docs/config.md and docs/config.schema.json, generated from the zod schema
// (z.toJSONSchema), so the reference and the editors' schema can never drift from what
// `keyhole check-config` accepts. Descriptions come from
// `.describe()` / `.meta({ description })` on the schema fields, or else from the JSDoc
// comment written on the field in the schema's source.
//
//   npm run docs:config            rewrite docs/config.md and docs/config.schema.json
//   npm run docs:config -- --check exit 1 when either is stale
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readdirSync } from 'node:fs';
import ts from 'typescript';
import { z } from 'zod';
import { configSchema } from '../src/config/schema.ts';

const SRC = resolve(import.meta.dirname, '..', 'src');

interface CommentedLiteral {
  keys: Set<string>;
  comments: Map<string, string>;
}

/**
 * Field comments written as JSDoc (`/** … *\/ key: …`) inside `z.object({…})`,
 * `z.strictObject({…})` or `.extend({…})` anywhere under src/. At generation time an object
 * schema takes the comment of a key from the literal whose keys it contains, so a schema
 * documented with plain comments is described too (`.describe()` wins when both exist).
 */
function commentedLiterals(): CommentedLiteral[] {
  const found: CommentedLiteral[] = [];
  const files = (readdirSync(SRC, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts'));
  for (const rel of files) {
    const file = join(SRC, rel);
    const text = readFileSync(file, 'utf8');
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
    const visit = (node: ts.Node): void => {
      if (ts.isObjectLiteralExpression(node) && ts.isCallExpression(node.parent)) {
        const callee = node.parent.expression.getText(source);
        if (/(?:^z\.(?:strictObject|object|looseObject)|\.extend)$/.test(callee)) {
          const keys = new Set<string>();
          const comments = new Map<string, string>();
          for (const prop of node.properties) {
            if (!prop.name || !(ts.isIdentifier(prop.name) || ts.isStringLiteral(prop.name))) continue;
            const key = prop.name.text;
            keys.add(key);
            const ranges = ts.getLeadingCommentRanges(text, prop.getFullStart()) ?? [];
            const doc = ranges.map((r) => text.slice(r.pos, r.end)).filter((c) => c.startsWith('/**')).pop();
            if (doc) {
              const clean = doc
                .replace(/^\/\*\*|\*\/$/g, '')
                .split('\n')
                .map((l) => l.replace(/^\s*\*\s?/, '').trim())
                .filter(Boolean)
                .join(' ');
              if (clean) comments.set(key, clean);
            }
          }
          if (comments.size > 0) found.push({ keys, comments });
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

function commentFor(literals: CommentedLiteral[], shapeKeys: string[], key: string): string | undefined {
  const shape = new Set(shapeKeys);
  const candidates = new Set(
    literals.filter((l) => l.comments.has(key) && [...l.keys].every((k) => shape.has(k))).map((l) => l.comments.get(key)!),
  );
  return candidates.size === 1 ? [...candidates][0] : undefined;
}

export const CONFIG_DOC = resolve(import.meta.dirname, '..', 'docs', 'config.md');

interface Node {
  type?: string | string[];
  description?: string;
  default?: unknown;
  const?: unknown;
  enum?: unknown[];
  anyOf?: Node[];
  oneOf?: Node[];
  allOf?: Node[];
  properties?: Record<string, Node>;
  required?: string[];
  items?: Node;
  additionalProperties?: Node | boolean;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  minItems?: number;
  $ref?: string;
  $defs?: Record<string, Node>;
  'x-keyhole-secret'?: boolean;
}

export function configJsonSchema(): Node {
  const literals = commentedLiterals();
  return z.toJSONSchema(configSchema, {
    io: 'input',
    unrepresentable: 'any',
    override: (ctx) => {
      const def = (ctx.zodSchema as unknown as ZodInternals)._zod.def;
      // `secret()` is a z.custom: a ${env:…}/${file:…} reference, never an inline value.
      if (def.type === 'custom') (ctx.jsonSchema as Node)['x-keyhole-secret'] = true;
      // A preprocessed field (`text()`, `filePath()`) accepts any input type, so zod calls it
      // optional; it is required when what it feeds is.
      if (def.type === 'object' && def.shape) {
        const required = Object.entries(def.shape)
          .filter(([, v]) => isRequiredInput(v))
          .map(([k]) => k);
        if (required.length > 0) (ctx.jsonSchema as Node).required = required;
        else delete (ctx.jsonSchema as Node).required;
        const props = (ctx.jsonSchema as Node).properties ?? {};
        for (const [key, prop] of Object.entries(props)) {
          if (prop.description) continue;
          const comment = commentFor(literals, Object.keys(def.shape), key);
          if (comment) prop.description = comment;
        }
      }
    },
  }) as Node;
}

interface ZodInternals {
  _zod: { optin?: string; def: { type: string; shape?: Record<string, ZodInternals>; in?: ZodInternals; out?: ZodInternals } };
}

function isRequiredInput(v: ZodInternals): boolean {
  const { def, optin } = v._zod;
  if (optin === undefined) return true;
  if (def.type !== 'pipe' || !def.in) return false;
  return def.in._zod.def.type === 'transform' ? def.out !== undefined && isRequiredInput(def.out) : isRequiredInput(def.in);
}

const DURATION = '^\\d+(ms|s|m|h)$';

function resolveRef(root: Node, n: Node): Node {
  if (!n.$ref) return n;
  const name = n.$ref.replace(/^#\/\$defs\//, '');
  return { ...(root.$defs?.[name] ?? {}), ...n, $ref: undefined };
}

/** Alternatives of a union, flattened. */
function variants(n: Node): Node[] | undefined {
  return n.anyOf ?? n.oneOf;
}

const code = (v: unknown) => `\`${typeof v === 'string' ? v : JSON.stringify(v)}\``;

function typeOf(root: Node, raw: Node): string {
  const n = resolveRef(root, raw);
  if (n['x-keyhole-secret']) return 'secret reference (`${env:NAME}` or `${file:/path}`)';
  const alts = variants(n);
  if (alts) {
    const isDuration = alts.some((a) => a.pattern === DURATION);
    if (isDuration) return "duration (milliseconds, or `500ms` `10s` `2m` `1h`)";
    return [...new Set(alts.map((a) => typeOf(root, a)))].join(' or ');
  }
  if (n.const !== undefined) return code(n.const);
  if (n.enum) return n.enum.map(code).join(' \\| ');
  const t = Array.isArray(n.type) ? n.type.join(' or ') : n.type;
  if (t === 'array') return `list of ${n.items ? typeOf(root, n.items) : 'values'}${n.minItems ? ` (at least ${n.minItems})` : ''}`;
  if (t === 'object') return n.properties ? 'object' : 'map';
  if (t === 'integer' || t === 'number') {
    const range = [n.minimum !== undefined ? `≥ ${n.minimum}` : '', n.maximum !== undefined && n.maximum < Number.MAX_SAFE_INTEGER ? `≤ ${n.maximum}` : ''].filter(Boolean).join(', ');
    return range ? `${t} (${range})` : t;
  }
  if (t === 'string') {
    if (n.format === 'uri') return 'URL';
    if (n.pattern) return `string matching \`${n.pattern}\``;
    return 'string';
  }
  return t ?? 'any';
}

function defaultOf(n: Node): string {
  if (n.default === undefined) return '';
  if (typeof n.default === 'object' && n.default !== null && Object.keys(n.default).length === 0) return '';
  return code(n.default);
}

interface Row {
  path: string;
  type: string;
  required: boolean;
  default: string;
  description: string;
}

/** Object alternatives of a union told apart by one constant property (`kind`, `store`, `type`). */
function discriminated(root: Node, n: Node): { key: string; cases: [string, Node][] } | undefined {
  const alts = variants(n)?.map((a) => resolveRef(root, a));
  if (!alts || alts.length < 2 || !alts.every((a) => a.properties)) return undefined;
  const first = alts[0]!.properties!;
  for (const key of Object.keys(first)) {
    const consts = alts.map((a) => a.properties![key]?.const);
    if (consts.every((c) => typeof c === 'string') && new Set(consts).size === alts.length) {
      return { key, cases: alts.map((a) => [a.properties![key]!.const as string, a]) };
    }
  }
  return undefined;
}

function walk(root: Node, raw: Node, path: string, required: boolean, rows: Row[], sections: Section[]): void {
  const n = resolveRef(root, raw);
  const union = discriminated(root, n);
  if (union) {
    rows.push({ path, type: `one of the \`${union.key}\` variants below`, required, default: defaultOf(n), description: n.description ?? '' });
    for (const [name, alt] of union.cases) {
      const sub: Row[] = [];
      const section: Section = { title: `\`${path}\` with \`${union.key}: ${name}\``, description: alt.description ?? '', rows: sub };
      sections.push(section);
      walkProps(root, alt, path, sub, sections);
    }
    return;
  }
  const alts = variants(n);
  if (alts && alts.every((a) => resolveRef(root, a).properties)) {
    // Undiscriminated object alternatives (e.g. token keys): document each shape.
    rows.push({ path, type: 'one of the shapes below', required, default: defaultOf(n), description: n.description ?? '' });
    alts.forEach((a, i) => {
      const sub: Row[] = [];
      const alt = resolveRef(root, a);
      const keys = Object.keys(alt.properties ?? {}).filter((k) => alt.required?.includes(k));
      sections.push({ title: `\`${path}\`, shape ${i + 1}${keys.length ? ` (with ${keys.map((k) => `\`${k}\``).join(', ')})` : ''}`, description: alt.description ?? '', rows: sub });
      walkProps(root, alt, path, sub, sections);
    });
    return;
  }
  const isObject = n.properties && (n.type === 'object' || n.type === undefined);
  const item = n.type === 'array' && n.items ? resolveRef(root, n.items) : undefined;
  const isArrayOfObjects = item && (item.properties || variants(item)?.every((a) => resolveRef(root, a).properties));
  rows.push({ path, type: typeOf(root, n), required, default: defaultOf(n), description: n.description ?? '' });
  if (isObject) walkProps(root, n, path, rows, sections);
  else if (isArrayOfObjects) walk(root, { ...resolveRef(root, n.items!), description: undefined }, `${path}[]`, true, rows, sections);
}

function walkProps(root: Node, n: Node, prefix: string, rows: Row[], sections: Section[]): void {
  for (const [key, child] of Object.entries(n.properties ?? {})) {
    walk(root, child, prefix ? `${prefix}.${key}` : key, n.required?.includes(key) ?? false, rows, sections);
  }
}

interface Section {
  title: string;
  description: string;
  rows: Row[];
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function table(rows: Row[]): string {
  const lines = ['| Key | Type | Default | Description |', '| --- | --- | --- | --- |'];
  for (const r of rows) {
    const type = r.type.replace(/(?<!\\)\|/g, '\\|');
    lines.push(`| \`${r.path}\`${r.required ? ' (required)' : ''} | ${type} | ${cell(r.default)} | ${cell(r.description)} |`);
  }
  return lines.join('\n');
}

export function renderConfigDocs(): string {
  const root = configJsonSchema();
  const out: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated by `npm run docs:config` (scripts/gen-config-docs.ts) from src/config/schema.ts. Do not edit by hand: a test fails when this file is stale. -->',
    '',
    'Keyhole reads one YAML file (`keyhole serve --config FILE`; check it with `keyhole check-config FILE`).',
    'Every key below is validated before anything listens, and every problem is reported with its path.',
    '',
    '- **Durations** are milliseconds, or a number with a unit: `500ms`, `10s`, `2m`, `1h`.',
    '- **Secret references** are the only way to give a credential: `${env:NAME}` (an environment variable)',
    '  or `${file:/run/secrets/name}` (a file; trailing newline removed). Inline secrets are refused.',
    '  Inside a YAML flow map `{ … }` quote the reference: `password: "${env:X}"`.',
    '- **Relative file paths** are taken from the config file\'s folder.',
    '- Unknown keys are errors, so a typo never silently falls back to a default.',
    '',
  ];
  for (const [key, child] of Object.entries(root.properties ?? {})) {
    const rows: Row[] = [];
    const sections: Section[] = [];
    walk(root, child, key, root.required?.includes(key) ?? false, rows, sections);
    out.push(`## \`${key}\``, '');
    const n = resolveRef(root, child);
    if (n.description) out.push(n.description, '');
    out.push(table(rows), '');
    for (const s of sections) {
      out.push(`### ${s.title}`, '');
      if (s.description) out.push(s.description, '');
      if (s.rows.length) out.push(table(s.rows), '');
    }
  }
  return out.join('\n').replace(/\n+$/, '\n');
}

export const CONFIG_SCHEMA = resolve(import.meta.dirname, '..', 'docs', 'config.schema.json');

/** A `${env:NAME}` / `${file:/path}` reference as written in the YAML. */
const REFERENCE = { type: 'string', pattern: '^\\$\\{(env|file):[^}]+\\}$', description: 'a reference, never an inline value: ${env:NAME} or ${file:/path}' };

/**
 * The JSON Schema of the YAML as written (draft 2020-12), for editors (yaml-language-server:
 * completion, hover, validation) and CI linters. Secret fields take a reference only.
 */
export function renderConfigSchema(): string {
  const schema = configJsonSchema() as Node & Record<string, unknown>;
  const secrets = (n: unknown): unknown => {
    if (Array.isArray(n)) return n.map(secrets);
    if (n === null || typeof n !== 'object') return n;
    const node = n as Record<string, unknown>;
    if (node['x-keyhole-secret']) return { ...REFERENCE, ...(typeof node.description === 'string' ? { description: `${node.description} (${REFERENCE.description})` } : {}) };
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, secrets(v)]));
  };
  const { $schema: _drop, ...body } = secrets(schema) as Record<string, unknown>;
  const out = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'Keyhole configuration',
    description: 'The YAML file `keyhole serve --config` reads. Generated from the schema by `npm run docs:config`; docs/config.md explains each key. `keyhole check-config` checks more (files, certificate pairs, providers).',
    ...body,
  };
  return `${JSON.stringify(out, null, 2)}\n`;
}

const invoked = process.argv[1] && resolve(process.argv[1]) === resolve(join(import.meta.dirname, 'gen-config-docs.ts'));
if (invoked) {
  const outputs: [string, string][] = [
    [CONFIG_DOC, renderConfigDocs()],
    [CONFIG_SCHEMA, renderConfigSchema()],
  ];
  if (process.argv.includes('--check')) {
    const stale = outputs.filter(([file, text]) => {
      try {
        return readFileSync(file, 'utf8') !== text;
      } catch {
        return true; // missing counts as stale
      }
    });
    for (const [file] of stale) process.stderr.write(`${file} is stale: run \`npm run docs:config\` and commit the result\n`);
    if (stale.length > 0) process.exit(1);
    process.stdout.write('docs/config.md and docs/config.schema.json are up to date\n');
  } else {
    for (const [file, text] of outputs) {
      writeFileSync(file, text);
      process.stdout.write(`wrote ${file}\n`);
    }
  }
}
