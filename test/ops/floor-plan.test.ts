// The floor plan cannot rot: src/ keeps it today, and the check (dependency-cruiser with
// .dependency-cruiser.cjs, `npm run deps` in CI) refuses an import up the plan, one across
// it, a circle, and a module in no part. The bad imports are made in a copy of src/.
import t from 'tap';
import { execFile } from 'node:child_process';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const root = join(import.meta.dirname, '..', '..');
const depcruise = join(root, 'node_modules', '.bin', 'depcruise');

async function cruise(dir: string): Promise<{ ok: boolean; out: string }> {
  try {
    const { stdout } = await promisify(execFile)(depcruise, ['src', '--config', '.dependency-cruiser.cjs', '--output-type', 'err'], { cwd: dir });
    return { ok: true, out: stdout };
  } catch (err) {
    return { ok: false, out: String((err as { stdout?: string }).stdout ?? err) };
  }
}

/** A fresh copy of the project's src/ and the files the check reads, with `change` applied. */
function copyWith(change: (src: string) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-plan-'));
  for (const f of ['src', 'tsconfig.json', '.dependency-cruiser.cjs', 'package.json']) cpSync(join(root, f), join(dir, f), { recursive: true });
  change(join(dir, 'src'));
  return dir;
}

t.test('src/ keeps the plan', async (t) => {
  const { ok, out } = await cruise(root);
  t.ok(ok, out);
});

t.test('the check refuses what breaks the plan', async (t) => {
  const cases: [string, (src: string) => void, RegExp][] = [
    ['a leaf importing a route', (src) => appendFileSync(join(src, 'http', 'answer.ts'), "\nimport '../server/routes.js';\n"), /http-imports-down/],
    ['providers importing the server', (src) => appendFileSync(join(src, 'providers', 'local.ts'), "\nimport '../server/routes.js';\n"), /providers-imports-down/],
    ['auth importing a provider', (src) => appendFileSync(join(src, 'auth', 'scope.ts'), "\nimport type { Provider } from '../providers/types.js';\nexport type P = Provider;\n"), /auth-imports-down/],
    ['providers importing auth (across)', (src) => appendFileSync(join(src, 'providers', 'registry.ts'), "\nimport '../auth/scope.js';\n"), /providers-imports-down/],
    [
      'a circle inside one part',
      (src) => {
        writeFileSync(join(src, 'relay', 'ping.ts'), "import { pong } from './pong.js';\nexport const ping = (): string => pong();\n");
        writeFileSync(join(src, 'relay', 'pong.ts'), "import { ping } from './ping.js';\nexport const pong = (): string => ping();\n");
      },
      /no-circular/,
    ],
    [
      'a folder no part names',
      (src) => {
        mkdirSync(join(src, 'misc'));
        writeFileSync(join(src, 'misc', 'util.ts'), "import '../reasons.js';\nexport const x = 1;\n");
      },
      /not-in-plan/,
    ],
  ];
  for (const [name, change, rule] of cases) {
    const dir = copyWith(change);
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const { ok, out } = await cruise(dir);
    t.notOk(ok, `${name}: refused`);
    t.match(out, rule, `${name}: by ${rule.source}`);
  }
});
