// docs/config.schema.json: what editors (yaml-language-server) and CI linters validate a
// Keyhole config with. It is generated from the zod schema (npm run docs:config), so it must
// be current, must accept every config this repository ships, and must refuse what the
// loader refuses for its shape (check-config still checks more: files, pairs, providers).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { CONFIG_SCHEMA, renderConfigSchema } from '../../scripts/gen-config-docs.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const schema = JSON.parse(readFileSync(CONFIG_SCHEMA, 'utf8')) as Record<string, unknown>;
const validate = new Ajv2020({ strict: false, allErrors: true }).compile(schema);
const errors = (doc: unknown): string[] => (validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`));

t.test('docs/config.schema.json is what `npm run docs:config` generates now', async (t) => {
  t.ok(readFileSync(CONFIG_SCHEMA, 'utf8') === renderConfigSchema(), 'stale: run `npm run docs:config` and commit it');
  t.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  t.equal(schema.title, 'Keyhole configuration');
});

t.test('it accepts config.example.yaml and the examples’ configs', async (t) => {
  for (const file of ['config.example.yaml', 'examples/flask-app/keyhole.yaml', 'examples/label-studio/keyhole.yaml']) {
    t.same(errors(parse(readFileSync(join(ROOT, file), 'utf8'))), [], file);
  }
});

t.test('it refuses what the loader refuses for its shape, at the same place', async (t) => {
  const good = parse(readFileSync(join(ROOT, 'config.example.yaml'), 'utf8')) as Record<string, Record<string, unknown>>;
  const variant = (change: (c: Record<string, Record<string, unknown>>) => void) => {
    const c = structuredClone(good);
    change(c);
    return errors(c);
  };
  t.match(variant((c) => ((c as Record<string, unknown>).provider = [])), [/^\/ must NOT have additional properties/], 'an unknown top-level key');
  t.match(variant((c) => ((c.server!.listen as Record<string, unknown>).port = 70000)), [/^\/server\/listen\/port must be <= 65535/], 'a port out of range');
  t.match(variant((c) => ((c.server!.listen as Record<string, unknown>).port = '8443')), [/^\/server\/listen\/port must be integer/], 'a port as text');
  t.ok(variant((c) => ((c.providers as unknown as Record<string, unknown>[])[0]!.kind = 'ftp')).length > 0, 'an unknown provider kind');
  t.match(variant((c) => delete (c as Record<string, unknown>).auth), [/^\/ must have required property 'auth'/], 'a missing section');
  t.match(variant((c) => ((c.auth!.keys as Record<string, unknown>[])[0]!.secret = 'an-inline-secret-0123456789abcdef')), [/secret must match pattern/], 'an inline secret');
  t.match(variant((c) => ((c.log as Record<string, unknown>).format = 'pretty')), [/^\/log\/format must be equal to one of the allowed values/], 'log.format json or text');
});

t.test('the docs name it, with the line that gives an editor completion', async (t) => {
  const ops = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');
  t.match(ops, /# yaml-language-server: \$schema=.*config\.schema\.json/);
  t.match(readFileSync(join(ROOT, 'config.example.yaml'), 'utf8'), /^# yaml-language-server: \$schema=docs\/config\.schema\.json$/m, 'the example carries it');
});
