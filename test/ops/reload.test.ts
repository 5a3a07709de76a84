// Reload on a real `keyhole serve` process: under steady load no request is lost, an
// in-flight stream finishes on the old runtime (which closes only then), and a bad config
// is refused with every problem while the old one keeps serving.
import t from 'tap';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { request } from 'undici';
import { dataUrl, localProviderItem, tempFiles } from '../helpers/keyhole.ts';
import { opsYaml, spawnKeyhole } from '../helpers/spawn.ts';
import { httpProviderItem, startGatedUpstream } from '../helpers/upstream.ts';

// Real processes on a shared 2-core machine: generous, but bounded.
t.setTimeout(240000);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const dataDir = () => tempFiles('ops-data', { 'a.txt': 'hello\n' });

/** The config under test: a local provider, an http one on the gated upstream, optionally one more. */
function yaml(root: string, upstream: string, extra: boolean): string {
  return opsYaml(root, httpProviderItem('up', 'https://up.test/', `${upstream}/`) + (extra ? localProviderItem('extra', root) : ''));
}

t.test('reload under steady load loses no request; in-flight streams finish on the old runtime', async (t) => {
  const up = await startGatedUpstream();
  t.teardown(() => up.close());
  const root = dataDir();
  const k = await spawnKeyhole(yaml(root, up.origin, false));
  t.teardown(() => k.stop());
  const token = await k.token({ scope: ['local://files/', 'local://extra/', 'https://up.test/'] });
  const outsider = await k.token({ sub: 'mallory', scope: ['local://elsewhere/'] });
  const auth = (tok: string) => ({ authorization: `Bearer ${tok}` });

  // A long download that starts on the first runtime and is held open across every reload.
  const bigRes = await request(k.base + dataUrl('https://up.test/big'), { headers: auth(token), dispatcher: k.dispatcher });
  t.equal(bigRes.statusCode, 200);
  const bigChunks: Buffer[] = [];
  bigRes.body.on('data', (c: Buffer) => bigChunks.push(c));
  const bigDone = new Promise<void>((resolve, reject) => bigRes.body.once('end', resolve).once('error', reject));

  // Steady load: four loops; each request is either 200 (good token) or an intended 403.
  const statuses = new Map<string, number>();
  const errors: string[] = [];
  let running = true;
  const count = (key: string) => statuses.set(key, (statuses.get(key) ?? 0) + 1);
  const loop = async (n: number) => {
    for (let i = 0; running; i++) {
      const bad = (i + n) % 5 === 0;
      try {
        const r = await k.get(dataUrl('local://files/a.txt'), { headers: auth(bad ? outsider : token) });
        const ok = bad ? r.status === 403 && JSON.parse(r.body.toString()).error === 'scope_denied' : r.status === 200 && r.body.toString() === 'hello\n';
        count(ok ? (bad ? '403 intended' : '200') : `unexpected ${r.status}`);
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
  };
  const loops = [0, 1, 2, 3].map(loop);

  const reloads = 6;
  for (let i = 1; i <= reloads; i++) {
    const extra = i % 2 === 1;
    k.rewriteConfig(yaml(root, up.origin, extra));
    if (i % 2 === 0) {
      const seen = k.logs.filter((l) => l.msg === 'configuration reloaded').length;
      k.child.kill('SIGHUP');
      await k.waitForLog(() => k.logs.filter((l) => l.msg === 'configuration reloaded').length > seen, 20_000, `reload ${i} by SIGHUP`);
    } else {
      const r = await k.adminPost('/admin/reload');
      t.equal(r.status, 200, `reload ${i} by POST /admin/reload`);
      t.equal(r.json.ok, true);
    }
    // The new config is what serves now: the extra provider comes and goes.
    const probe = await k.get(dataUrl('local://extra/a.txt'), { headers: auth(token) });
    t.equal(probe.status, extra ? 200 : 403, `after reload ${i} the extra provider is ${extra ? 'present' : 'gone'}`);
  }
  running = false;
  await Promise.all(loops);

  t.same(errors, [], 'no request failed at the connection level');
  const unexpected = [...statuses].filter(([k]) => k.startsWith('unexpected'));
  t.same(unexpected, [], 'every response was 200 or the intended 403');
  const served = (statuses.get('200') ?? 0) + (statuses.get('403 intended') ?? 0);
  t.ok(served > 20, `steady load ran through ${reloads} reloads (${served} responses: ${JSON.stringify(Object.fromEntries(statuses))})`);
  t.ok((statuses.get('403 intended') ?? 0) > 0, 'intended refusals were counted too');

  // The first runtime still holds the download, so it cannot have closed yet.
  const closedBefore = k.logs.filter((l) => l.msg.startsWith('previous configuration closed')).length;
  t.ok(closedBefore < reloads, `the runtime holding the download is still open (${closedBefore} of ${reloads} closed)`);
  up.release();
  await bigDone;
  const got = Buffer.concat(bigChunks);
  t.equal(got.length, up.body.length, 'the download started before the reloads arrived whole');
  t.equal(sha(got), sha(up.body));
  await k.waitForLog(() => k.logs.filter((l) => l.msg.startsWith('previous configuration closed')).length === reloads, 10_000, 'every previous runtime closed');
  t.pass('once the download ended, every previous runtime closed');

  k.child.kill('SIGTERM');
  t.same(await k.exited, { code: 0, signal: null });
});

t.test('a bad reload is refused with every problem, and the old config keeps serving', async (t) => {
  const up = await startGatedUpstream(1024);
  t.teardown(() => up.close());
  const root = dataDir();
  const good = yaml(root, up.origin, true);
  const k = await spawnKeyhole(good);
  t.teardown(() => k.stop());
  const token = await k.token({ scope: ['local://files/', 'local://extra/'] });
  const auth = { authorization: `Bearer ${token}` };

  const bad = good
    .replace('log: { level: info, audit: false }', 'log: { level: info, audit: false, colour: true }')
    .replace(`root: ${root}\n`, `root: ${join(root, 'missing-folder')}\n`)
    .replace('secret: ${env:KEYHOLE_TEST_SECRET}', 'secret: ${env:KEYHOLE_NOT_SET_ANYWHERE}');
  k.rewriteConfig(bad);

  const r = await k.adminPost('/admin/reload');
  t.equal(r.status, 400);
  t.equal(r.json.ok, false);
  const problems = (r.json.problems as string[]).join('\n');
  t.match(problems, /log\.colour: unknown key/, 'the unknown key is reported');
  t.match(problems, /auth\.keys\[0\]\.secret: .*KEYHOLE_NOT_SET_ANYWHERE/, 'the unreadable reference is reported');
  const refused = await k.waitForLog((l) => l.msg.startsWith('reload refused'));
  t.match((refused.problems as string[]).join('\n'), /log\.colour/, 'the problems are logged');

  // A second bad one, by SIGHUP: refused again, and the folder problem shows once the rest is fixed.
  k.rewriteConfig(good.replace(`root: ${root}\n`, `root: ${join(root, 'missing-folder')}\n`));
  k.child.kill('SIGHUP');
  const second = await k.waitForLog((l) => l.msg.startsWith('reload refused') && (l.problems as string[]).some((p) => p.includes('missing-folder')));
  t.match((second.problems as string[]).join('\n'), /providers\[\d\]\.root: .*missing-folder/);

  // Still the old config: both providers answer.
  t.equal((await k.get(dataUrl('local://files/a.txt'), { headers: auth })).status, 200, 'old config still serves');
  t.equal((await k.get(dataUrl('local://extra/a.txt'), { headers: auth })).status, 200, 'old providers all still there');
  t.notOk(k.logs.some((l) => l.msg === 'configuration reloaded'), 'nothing was reloaded');
  t.notOk(k.logs.some((l) => JSON.stringify(l).includes('test-secret-0123456789')), 'no secret in the logs');

  k.rewriteConfig(yaml(root, up.origin, false));
  const fixed = await k.adminPost('/admin/reload');
  t.equal(fixed.status, 200, 'a fixed config reloads');
  t.equal((await k.get(dataUrl('local://extra/a.txt'), { headers: auth })).status, 403, 'and takes effect');
});
