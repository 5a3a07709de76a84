// Property-based fuzzing of the local provider through a real Keyhole: random hostile URIs
// over a tree whose symlinks lead out of the root (and a sibling folder whose name starts
// like the root's) never serve a byte from outside, and every refusal carries a reason code.
import t from 'tap';
import fc from 'fast-check';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REASONS } from '../../src/reasons.ts';
import { dataUrl, filesProviderYaml, keyholeWith, writeFiles } from '../helpers/keyhole.ts';
import { Tally } from '../security/tally.ts';

const RUNS = Math.max(50, Math.floor(Number(process.env.FUZZ_RUNS ?? 400) / 2));
const tally = new Tally('fuzz: local confinement');

const dir = mkdtempSync(join(tmpdir(), 'keyhole-confine-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const root = join(dir, 'root');
writeFiles(dir, {
  'root/pub.txt': 'PUBLIC',
  'root/sub/inner.txt': 'INNER',
  'outside/secret.txt': 'OUTSIDE-CANARY',
  'root-evil/secret.txt': 'PREFIX-CANARY',
  'top.txt': 'PARENT-CANARY',
});
symlinkSync(join(dir, 'outside'), join(root, 'link-out'));
symlinkSync(join(dir, 'outside', 'secret.txt'), join(root, 'file-out'));
symlinkSync(join(dir, 'root-evil'), join(root, 'link-evil'));
symlinkSync('../top.txt', join(root, 'rel-out'));
symlinkSync('/etc/passwd', join(root, 'passwd'));
symlinkSync(join(root, 'sub'), join(root, 'link-in'));

const { k, token } = await keyholeWith(t, filesProviderYaml(root), ['local://files/']);
const CANARY = /CANARY|root:x:0:0/;

async function fetchUri(uri: string) {
  const res = await k.get(dataUrl(uri), { authorization: `Bearer ${token}` });
  return { status: res.status, body: res.body.toString('latin1') };
}

t.test('symlinks out of the root, fixed cases', async (t) => {
  for (const path of ['link-out/secret.txt', 'file-out', 'link-evil/secret.txt', 'rel-out', 'passwd']) {
    const r = await fetchUri(`local://files/${path}`);
    t.equal(r.status, 404, `${path} → 404`);
    t.notMatch(r.body, CANARY);
    tally.record(`symlink ${path}`, r.status === 404 && !CANARY.test(r.body));
  }
  const inside = await fetchUri('local://files/link-in/inner.txt');
  t.equal(inside.status, 200, 'a symlink that stays inside is served');
  t.equal(inside.body, 'INNER');
});

t.test('random hostile URIs never leave the root; refusals carry a reason code', async (t) => {
  const names = ['pub.txt', 'sub', 'inner.txt', 'link-out', 'file-out', 'link-evil', 'rel-out', 'passwd', 'link-in', 'secret.txt', 'root-evil', 'outside', 'top.txt', 'root', '..', '.', '%2e%2e', '%2E.', '..%2f', '%2f', '%5c..', '%00', '%252e%252e', '', '~', '%c0%ae%c0%ae', '\uff0e\uff0e', 'etc', 'passwd%00.txt'];
  const uri = fc
    .tuple(fc.constantFrom('local://files/', 'local://files//', 'LOCAL://FILES/', 'local://files/../', 'local://files-evil/', 'local://files'), fc.array(fc.constantFrom(...names), { minLength: 0, maxLength: 5 }), fc.constantFrom('', '/'))
    .map(([p, segs, trail]) => p + segs.join('/') + trail);
  let tried = 0;
  const result = await fc.check(
    fc.asyncProperty(uri, async (u) => {
      tried++;
      const r = await fetchUri(u);
      if (CANARY.test(r.body)) return false;
      if (r.status >= 400) {
        const reason = (JSON.parse(r.body) as { error: string }).error;
        return reason in REASONS;
      }
      return r.body === 'PUBLIC' || r.body === 'INNER';
    }),
    { numRuns: RUNS },
  );
  tally.tried += tried - 1;
  tally.record(`random local URIs${result.failed ? ` ${JSON.stringify(result.counterexample)}` : ''}`, !result.failed);
  t.notOk(result.failed, `${result.numRuns} random URIs${result.failed ? ` — counterexample ${JSON.stringify(result.counterexample)}` : ''}`);
});

t.test('hostile inputs tally', async (t) => tally.report(t));
