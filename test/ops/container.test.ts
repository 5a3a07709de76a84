// The image's promises, read from the Dockerfile (CI has no Docker daemon): the final stage
// runs as a non-root user, has a HEALTHCHECK on /healthz, carries no build tools or package
// managers, and stops with SIGTERM (which drains).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const text = readFileSync(join(import.meta.dirname, '..', '..', 'Dockerfile'), 'utf8');
// Instructions of the last stage, continuation lines joined.
const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
const lastFrom = lines.map((l) => l.startsWith('FROM ')).lastIndexOf(true);
const final = lines.slice(lastFrom);

t.test('multi-stage: the build happens in an earlier stage', async (t) => {
  t.ok(lastFrom > 0, 'more than one stage');
  t.notOk(final.some((l) => /^RUN (?!rm ).*\b(npm (ci|install)|tsc|npx)\b/.test(l)), 'nothing is installed or compiled in the final stage');
  t.ok(final.some((l) => /^COPY --from=\w+ .*\/dist /.test(l)), 'the compiled dist/ is copied from the build stage');
  t.ok(final.some((l) => /^RUN rm -rf .*\/usr\/local\/bin\/npm/.test(l)), 'npm and friends are removed from the final image');
});

t.test('runs as a non-root user, with a HEALTHCHECK on /healthz, stopped by SIGTERM', async (t) => {
  const user = final.filter((l) => l.startsWith('USER ')).pop();
  t.ok(user && !/^USER (root|0)(:|$)/.test(user), `final user: ${user}`);
  const health = final.find((l) => l.startsWith('HEALTHCHECK '));
  t.match(health, /\/healthz/);
  const stop = final.find((l) => l.startsWith('STOPSIGNAL '));
  t.ok(stop === undefined || stop === 'STOPSIGNAL SIGTERM', 'SIGTERM (the default) drains');
  t.match(final.find((l) => l.startsWith('ENTRYPOINT ')), /^ENTRYPOINT \["node", "--single-threaded-gc", "--max-semi-space-size=8", "dist\/cli\.js"\]$/, 'node is PID 1 and gets the signal itself, with the V8 flags Keyhole is measured with');
});

t.test('one set of V8 flags wherever Keyhole starts: the image, npm start, the keyhole bin, ./keyhole, the bench', async (t) => {
  const root = join(import.meta.dirname, '..', '..');
  const entry = /^ENTRYPOINT \["node", (.*), "dist\/cli\.js"\]$/.exec(final.find((l) => l.startsWith('ENTRYPOINT ')) ?? '');
  const image = entry ? (JSON.parse(`[${entry[1]}]`) as string[]).join(' ') : '';
  const start = /^node (.*) src\/cli\.ts serve$/.exec((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start)?.[1];
  const shebang = /^#!\/usr\/bin\/env -S node (.*)$/.exec(readFileSync(join(root, 'src', 'cli.ts'), 'utf8').split('\n')[0]!)?.[1];
  t.ok(image.length > 0, `the image starts node with flags (${image})`);
  t.equal(start, image, 'npm start');
  t.equal(shebang, image, 'the keyhole bin (src/cli.ts shebang)');
  const launcher = /^exec "\$node" (.*) "\$root\/src\/cli\.ts" "\$@"$/m.exec(readFileSync(join(root, 'keyhole'), 'utf8'))?.[1];
  t.equal(launcher, image, './keyhole (the launcher the README uses)');
  t.match(readFileSync(join(root, 'bench', 'lib.sh'), 'utf8'), /scripts\.start/, 'the bench reads them from npm start');
});
