// The table of broken configurations (broken-configs.ts): each must be told exactly what is
// wrong, where, and nothing else (no cascade). The same problems come from the loader, from
// one `keyhole check-config` call over every file, and from `keyhole serve`: one code path.
import t, { type Test } from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, formatProblem, loadConfigFile } from '../../src/config/load.ts';
import { runCli, tmpDir } from '../helpers/cli.ts';
import { brokenConfigs, ENV } from './broken-configs.ts';

const dir = tmpDir('broken');
mkdirSync(join(dir, 'files'));
const rows = brokenConfigs(dir).map((row, i) => {
  const file = join(dir, `${String(i).padStart(2, '0')}.yaml`);
  writeFileSync(file, row.yaml);
  return { ...row, file };
});

function problemsOf(file: string, env: Record<string, string>): string[] {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    loadConfigFile(file);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.problems.map(formatProblem);
  } finally {
    for (const k of Object.keys(env)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}

const expectLines = (t: Test, lines: string[], problems: [string, RegExp][]) => {
  t.equal(lines.length, problems.length, `exactly ${problems.length} problem(s), no cascade:\n${lines.join('\n')}`);
  problems.forEach(([path, message], i) => {
    const line = lines[i] ?? '';
    t.ok(line.startsWith(`${path}: `), `#${i + 1} at ${path} (got: ${line})`);
    t.match(line.slice(path.length + 2), message, `#${i + 1} says what is wrong`);
  });
};

t.ok(rows.length >= 30, `${rows.length} broken configurations`);

t.test('the loader serve uses: each row gets its own problems, with path and message', async (t) => {
  for (const row of rows) await t.test(row.name, async (t) => expectLines(t, problemsOf(row.file, { ...ENV, ...row.env }), row.problems));
});

t.test('check-config over every file in one call: every file, every problem, prefixed by its file; exit 2', async (t) => {
  const plain = rows.filter((r) => r.env === undefined);
  const r = runCli(['check-config', ...plain.map((row) => row.file)], { env: ENV });
  t.equal(r.code, 2, 'problems: exit 2');
  for (const row of plain) {
    const lines = r.stdout
      .split('\n')
      .filter((l) => l.startsWith(`  ${row.file}: `))
      .map((l) => l.slice(`  ${row.file}: `.length));
    t.match(r.stdout, `${row.file}: ${row.problems.length} problem(s)\n`, `${row.name}: counted`);
    expectLines(t, lines, row.problems);
  }
  t.notMatch(r.stdout + r.stderr, /inline-secret-0123456789abcdef/, 'an inline secret is never echoed');
  t.notMatch(r.stdout + r.stderr, new RegExp(ENV.KEYHOLE_TEST_SECRET), 'nor a secret read from the environment');
});

t.test('serve refuses each file with the very problems check-config lists, before it listens', async (t) => {
  const pick = rows.filter((r) => /five problems|mTLS pair|log file|unquoted|did you mean|kind/.test(r.name) || r.problems.length > 3);
  t.ok(pick.length >= 4);
  for (const row of pick) {
    const served = runCli(['serve', '--config', row.file], { env: { ...ENV, ...row.env } });
    const checked = runCli(['check-config', row.file], { env: { ...ENV, ...row.env } });
    t.equal(served.code, 2, `${row.name}: serve exits 2`);
    const fromServe = served.stderr.split('\n').filter((l) => l.startsWith('  ')).map((l) => l.trim());
    const fromCheck = checked.stdout.split('\n').filter((l) => l.startsWith('  ')).map((l) => l.trim().slice(`${row.file}: `.length));
    t.same(fromServe, fromCheck, `${row.name}: the same problems`);
    t.notMatch(served.stdout + served.stderr, /listening/, 'nothing listened');
  }
});
