// Links under a `local` provider's root never read a file past its provider's checks: a file
// belongs to the local provider with the deepest root holding its real path, so a symlink
// into another provider's root (nested in ours or beside it), or that nested root reached
// directly, is refused 403 local_link_refused, as is any regular file with more than one hard
// link (its other names may be anywhere). Real files, symlinks and hard links in a temp dir;
// the checks are on the opened file, so a symlink flipped during requests never leaks.
import t from 'tap';
import { linkSync, mkdtempSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditFor, baseYaml, dataUrl, startKeyhole, writeFiles } from '../helpers/keyhole.ts';

const dir = mkdtempSync(join(tmpdir(), 'keyhole-local-links-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const pub = join(dir, 'pub');
const priv = join(pub, 'priv'); // a root nested in another one
const other = join(dir, 'other'); // a root beside it
const outside = join(dir, 'outside');
writeFiles(dir, {
  'pub/hello.txt': 'PUBLIC',
  'pub/priv/secret.txt': 'PRIVATE-ACME',
  'other/secret.txt': 'OTHER-ACME',
  'outside/secret.txt': 'OUTSIDE-HARD',
  'pub/own.txt': 'OWN',
});
symlinkSync(join(priv, 'secret.txt'), join(pub, 'to-priv.txt'));
symlinkSync('priv/secret.txt', join(pub, 'to-priv-relative.txt'));
symlinkSync(priv, join(pub, 'to-priv-dir'));
symlinkSync(join(other, 'secret.txt'), join(pub, 'to-other.txt'));
symlinkSync(join(pub, 'hello.txt'), join(pub, 'inside-link.txt'));
symlinkSync(join(pub, 'hello.txt'), join(priv, 'up.txt'));
linkSync(join(outside, 'secret.txt'), join(pub, 'hard.txt'));
linkSync(join(pub, 'own.txt'), join(pub, 'own-twin.txt'));

const k = await startKeyhole(
  baseYaml(`providers:
  - { name: pub, kind: local, match: "local://pub/", root: ${pub} }
  - { name: priv, kind: local, match: "local://priv/", root: ${priv}, orgs: [acme] }
  - { name: other, kind: local, match: "local://other/", root: ${other}, orgs: [acme] }
`),
);
t.teardown(() => k.close());
const SECRET = /PRIVATE-ACME|OTHER-ACME|OUTSIDE-HARD/;
const globex = await k.token({ scope: ['local://pub/', 'local://priv/', 'local://other/'], org: 'globex' });
const acme = await k.token({ scope: ['local://pub/', 'local://priv/', 'local://other/'], org: 'acme' });
const get = (uri: string, token = globex) => k.get(dataUrl(uri), { authorization: `Bearer ${token}` });
const error = (body: Buffer): string => {
  try {
    return (JSON.parse(body.toString()) as { error: string }).error;
  } catch {
    return `(served: ${body.toString().slice(0, 20)})`;
  }
};

t.test("nothing of an org-restricted root is read through another provider's root", async (t) => {
  t.equal(error((await get('local://priv/secret.txt')).body), 'org_denied', 'the owner refuses this org');
  const cases: [string, string][] = [
    ['local://pub/to-priv.txt', "the file is in another local provider's root"],
    ['local://pub/to-priv-relative.txt', "the file is in another local provider's root"],
    ['local://pub/to-priv-dir/secret.txt', "the file is in another local provider's root"],
    ['local://pub/priv/secret.txt', "the file is in another local provider's root"],
    ['local://pub/to-other.txt', "the file is in another local provider's root"],
  ];
  for (const [uri, detail] of cases) {
    const res = await get(uri);
    t.equal(res.status, 403, `${uri}: 403`);
    t.equal(error(res.body), 'local_link_refused', `${uri}: local_link_refused`);
    t.notMatch(res.body.toString(), SECRET, `${uri}: nothing of the other root`);
    t.match(await auditFor(k, res.headers['x-request-id'] as string), { provider: 'pub', reason: 'local_link_refused', status: 403, detail }, `${uri}: audited`);
  }
  // The same links for an org the owner would allow: still refused, the file has one provider.
  t.equal((await get('local://pub/to-priv.txt', acme)).status, 403, 'refused for acme too: read it through its own provider');
});

t.test('a nested root serves its own files; its links into the enclosing root are refused', async (t) => {
  const own = await get('local://priv/secret.txt', acme);
  t.equal(own.status, 200);
  t.equal(own.body.toString(), 'PRIVATE-ACME');
  const up = await get('local://priv/up.txt', acme);
  t.equal(up.status, 403, 'priv/up.txt leads into pub');
  t.equal(error(up.body), 'local_link_refused');
  const inside = await get('local://pub/inside-link.txt');
  t.equal(inside.status, 200, 'a symlink that stays in its own root is served');
  t.equal(inside.body.toString(), 'PUBLIC');
});

t.test('a file with more than one hard link is refused', async (t) => {
  for (const uri of ['local://pub/hard.txt', 'local://pub/own.txt', 'local://pub/own-twin.txt']) {
    const res = await get(uri);
    t.equal(res.status, 403, `${uri}: 403`);
    t.equal(error(res.body), 'local_link_refused', `${uri}: local_link_refused`);
    t.notMatch(res.body.toString(), SECRET);
    t.match(await auditFor(k, res.headers['x-request-id'] as string), { detail: 'the file has more than one hard link' });
  }
  t.equal((await get('local://pub/hello.txt')).status, 200, 'a file with one link is served');
});

t.test('a symlink flipped between a public file and a nested root during requests never leaks', async (t) => {
  const flip = join(pub, 'flip.txt');
  symlinkSync(join(pub, 'hello.txt'), flip);
  let flipping = true;
  let flips = 0;
  const flipper = (async () => {
    while (flipping) {
      const tmp = join(pub, `.flip-${flips++}`);
      symlinkSync(flips % 2 ? join(priv, 'secret.txt') : join(pub, 'hello.txt'), tmp);
      renameSync(tmp, flip); // atomic: the name always exists
      await new Promise((r) => setImmediate(r));
    }
  })();
  const seen = new Set<string>();
  for (let i = 0; i < 150; i++) {
    const res = await get('local://pub/flip.txt');
    const outcome = res.status === 200 ? `200 ${res.body.toString()}` : `${res.status} ${error(res.body)}`;
    seen.add(outcome);
  }
  flipping = false;
  await flipper;
  t.ok(flips > 10, 'the link flipped during the requests');
  t.same([...seen].filter((o) => o !== '200 PUBLIC' && o !== '403 local_link_refused'), [], `only the public file or a refusal (saw ${[...seen].join(', ')})`);
});
