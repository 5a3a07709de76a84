// Every YAML example in the README, docs/ and examples/*/README.md parses and validates
// against the config schema, so an example cannot rot. A block is merged over a small
// valid base (examples show one section at a time); the only problems tolerated are files
// that exist on the reader's machine, not this one (certificates, secret files, local roots).
import t from 'tap';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseDocument } from 'yaml';
import { ConfigError, formatProblem, validateConfig } from '../../src/config/load.ts';
import { configSchema } from '../../src/config/schema.ts';
import { testCerts } from '../helpers/certs.ts';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { CONFIG_SCHEMA } from '../../scripts/gen-config-docs.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const MISSING_FILE = /cannot be read \(ENOENT\)|ENOENT|is not a folder|no such file/;

interface Block {
  file: string;
  line: number;
  text: string;
}

function yamlBlocks(file: string): Block[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const blocks: Block[] = [];
  let start = -1;
  lines.forEach((l, i) => {
    if (start < 0 && /^\s*```ya?ml\s*$/.test(l)) start = i + 1;
    else if (start >= 0 && /^\s*```\s*$/.test(l)) {
      blocks.push({ file: relative(ROOT, file), line: start + 1, text: lines.slice(start, i).join('\n') });
      start = -1;
    }
  });
  return blocks;
}

const markdown = [
  join(ROOT, 'README.md'),
  ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join(ROOT, 'docs', f)),
  // the integration kits' walkthroughs (examples/*/README.md)
  ...readdirSync(join(ROOT, 'examples'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('README.md')).map((f) => join(ROOT, 'examples', f)),
];
const blocks = markdown.flatMap(yamlBlocks);

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObject(v) && isObject(out[k]) ? merge(out[k], v) : v;
  return out;
}

const certs = testCerts();
const root = mkdtempSync(join(tmpdir(), 'keyhole-docs-yaml-'));
const base = {
  server: { listen: { host: '127.0.0.1', port: 8443 }, tls: { cert: certs.serverCert, key: certs.serverKey } },
  auth: { issuer: 'docs', audience: 'keyhole', keys: [{ kid: 'base', algorithms: ['HS256'], secret: '${env:BASE_SECRET}' }] },
  providers: [{ name: 'base', kind: 'local', match: 'local://base/', root }],
};
// Every ${env:NAME} an example names is set: base64 (an Azure account key) and long enough for
// an HMAC key.
const EXAMPLE_VALUE = Buffer.alloc(48, 7).toString('base64');
const env = new Proxy({} as NodeJS.ProcessEnv, { get: (_t, name) => (typeof name === 'string' ? EXAMPLE_VALUE : undefined) });
const topLevel = new Set(Object.keys(configSchema.shape));
// The editors' schema (docs/config.schema.json) must accept every example too.
const bySchema = new Ajv2020({ strict: false, allErrors: true }).compile(JSON.parse(readFileSync(CONFIG_SCHEMA, 'utf8')) as object);
// Building a provider is part of the check (as serve does): an Azure workload identity needs
// the variables AKS's webhook sets in the pod, which the examples are written for.
Object.assign(process.env, { AZURE_CLIENT_ID: '00000000-0000-0000-0000-000000000001', AZURE_TENANT_ID: '00000000-0000-0000-0000-000000000002', AZURE_FEDERATED_TOKEN_FILE: join(root, 'azure-token') });

t.test('the docs have YAML examples to check', async (t) => {
  t.ok(blocks.length >= 15, `${blocks.length} blocks found`);
  t.ok(blocks.some((b) => b.file.startsWith('examples/')), 'the examples’ READMEs among them');
});

for (const block of blocks) {
  t.test(`${block.file}:${block.line}`, async (t) => {
    const doc = parseDocument(block.text, { uniqueKeys: true });
    t.same(doc.errors.map((e) => e.message.split('\n')[0]), [], 'parses as YAML');
    const tree = doc.toJS() as unknown;
    t.ok(isObject(tree), 'a mapping at the top');
    if (!isObject(tree)) return;
    const unknown = Object.keys(tree).filter((k) => !topLevel.has(k));
    t.same(unknown, [], 'every top-level key is a Keyhole config key');
    let problems: string[] = [];
    try {
      validateConfig(merge(base, tree), { env, baseDir: root });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems = err.problems.map(formatProblem).filter((p) => !MISSING_FILE.test(p));
    }
    t.same(problems, [], 'validates against the schema (files on the reader’s machine aside)');
    const merged = merge(base, tree);
    t.same(bySchema(merged) ? [] : bySchema.errors?.map((e) => `${e.instancePath} ${e.message ?? ''}`), [], 'and against docs/config.schema.json');
  });
}
