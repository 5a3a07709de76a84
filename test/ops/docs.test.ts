// Docs that cannot drift: the config reference is exactly what the generator makes from the
// schema today, every registered metric is in the catalog, every reason code is explained
// (and nothing explained that no longer exists).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_DOC, configJsonSchema, renderConfigDocs } from '../../scripts/gen-config-docs.ts';
import { Metrics } from '../../src/observe/metrics.ts';
import { REASONS } from '../../src/reasons.ts';

const DOCS = join(import.meta.dirname, '..', '..', 'docs');

t.test('docs/config.md is what `npm run docs:config` generates from the schema now', async (t) => {
  const current = readFileSync(CONFIG_DOC, 'utf8');
  t.ok(current === renderConfigDocs(), 'docs/config.md is stale: run `npm run docs:config` and commit it');
});

t.test('the config reference covers every top-level key, with types and descriptions', async (t) => {
  const doc = readFileSync(CONFIG_DOC, 'utf8');
  const schema = configJsonSchema();
  for (const key of Object.keys(schema.properties ?? {})) t.match(doc, `## \`${key}\``, `section for ${key}`);
  t.match(doc, /\| `server\.drainTimeout` \| duration .*\| `20000` \| on SIGTERM/, 'a row carries type, default and description');
  t.match(doc, /\| `admin\.token` \| secret reference/, 'secrets are shown as references');
  t.match(doc, /### `providers\[\]` with `kind: local`/, 'each provider kind has its own table');
  const untyped = [...doc.matchAll(/^\| `([^`]+)` \| any \|/gm)].map((m) => m[1]);
  t.same(untyped, [], 'every key has a type an operator can write (no `any`)');
  t.match(doc, /\| `providers\[\]\.allowPrivateNetworks` \| boolean or list of string/, 'allowPrivateNetworks: true/false or CIDR ranges');
});

t.test('every metric registered in src/observe/metrics.ts is in docs/metrics.md', async (t) => {
  const doc = readFileSync(join(DOCS, 'metrics.md'), 'utf8');
  const names = (await new Metrics(false).registry.getMetricsAsJSON()).map((m) => m.name);
  t.ok(names.length >= 8, `${names.length} metrics registered`);
  const missing = names.filter((n) => !doc.includes(`| \`${n}\` |`));
  t.same(missing, [], 'no metric without a row in the catalog');
  const listed = [...doc.matchAll(/^\| `(keyhole_[a-z_]+)` \|/gm)].map((m) => m[1]);
  t.same(listed.filter((n) => !names.includes(n!)), [], 'no row for a metric that no longer exists');
});

t.test('every reason code in src/reasons.ts is in docs/reasons.md with what to do', async (t) => {
  const doc = readFileSync(join(DOCS, 'reasons.md'), 'utf8');
  const rows = new Map([...doc.matchAll(/^\| `([a-z_]+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$/gm)].map((m) => [m[1]!, { status: m[2]!.trim(), meaning: m[3]!.trim(), action: m[4]!.trim() }]));
  const codes = Object.keys(REASONS);
  t.same(codes.filter((c) => !rows.has(c)), [], 'no reason code without a row');
  t.same([...rows.keys()].filter((c) => !codes.includes(c)), [], 'no row for a code that no longer exists');
  for (const [code, row] of rows) t.ok(row.status && row.meaning.length > 10 && row.action.length > 3, `${code} has a status, a meaning and an action`);
});
