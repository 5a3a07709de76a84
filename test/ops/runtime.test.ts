// One runtime everywhere: the image, the engines field, the Node that npm brings for machines
// whose system node is older (node-linux-* optional dependencies), and the Node these tests
// run on. undici 8 is the line without the paused-parser crash (undici #5360).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  engines: { node: string };
  optionalDependencies: Record<string, string>;
};
const major = (v: string): number => Number(/(\d+)/.exec(v)?.[1]);

t.test('the image, engines, the bundled Node and this process agree on Node 24', async (t) => {
  const from = readFileSync(join(root, 'Dockerfile'), 'utf8').match(/^FROM node:(\d+)/gm) ?? [];
  t.ok(from.length >= 2, 'both stages name a node image');
  for (const line of from) t.equal(major(line.slice('FROM node:'.length)), 24, line);
  t.equal(pkg.engines.node, '>=24', 'engines');
  const bundled = Object.entries(pkg.optionalDependencies).filter(([name]) => name.startsWith('node-linux-'));
  t.ok(bundled.length >= 2, 'Node is bundled for linux x64 and arm64');
  for (const [name, range] of bundled) t.equal(major(range), 24, name);
  t.equal(major(process.versions.node), 24, `the suite runs on Node 24 (${process.version})`);
});

t.test('undici 8 is the one loaded', async (t) => {
  const undiciPkg = createRequire(import.meta.url)('undici/package.json') as { version: string };
  t.equal(major(undiciPkg.version), 8, `undici ${undiciPkg.version}`);
});
