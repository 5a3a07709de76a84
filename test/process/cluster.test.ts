// `workers: 2` on a real `keyhole serve`: a primary that owns the admin listener and two
// workers sharing the data listener. A revocation reaches every worker (and a replacement
// worker), a killed worker is replaced while traffic continues, a reload reaches every
// worker, /metrics covers the group, and SIGTERM drains the whole group to exit 0.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { readFileSync } from 'node:fs';
import { restartDelay } from '../../src/process/primary.ts';
import { RelayedRevocationStore } from '../../src/process/revocation-fanout.ts';
import { testCerts } from '../helpers/certs.ts';
import { dataUrl as dataPath } from '../helpers/keyhole.ts';
import { opsYaml, spawnKeyhole, type KeyholeProcess, type LogLine } from '../helpers/spawn.ts';

// Real processes on a shared 2-core machine: generous, but bounded.
t.setTimeout(300000);

t.test('restart backoff doubles for a worker that keeps dying young, capped at 10 s', async (t) => {
  t.same([1, 2, 3, 4, 8, 20].map(restartDelay), [100, 200, 400, 800, 10_000, 10_000]);
});

t.test('the relayed revocation store answers only once every worker applied it', async (t) => {
  const relayed: unknown[] = [];
  let fail = false;
  const store = new RelayedRevocationStore(3600, async (r) => {
    relayed.push(r);
    if (fail) throw new Error('a worker did not answer');
  });
  t.teardown(() => store.close());
  const far = Math.floor(Date.now() / 1000) + 86_400; // past the store's horizon, whatever today is
  await store.revokeToken('j1', far);
  await store.revokeSubject('bob', 100);
  await store.revokeSubject('bob', 50);
  t.same(relayed, [{ jti: 'j1', until: far }, { sub: 'bob', at: 100 }, { sub: 'bob', at: 100 }], 'a subject revocation never moves back in time');
  t.equal(store.isRevoked({ sub: 'x', jti: 'j1' } as never), true);
  t.equal(store.isRevoked({ sub: 'bob', iat: 99 } as never), true);
  t.equal(store.isRevoked({ sub: 'bob', iat: 101 } as never), false);
  fail = true;
  await t.rejects(store.revokeToken('j2', far), /did not answer/, 'a relay failure is the caller’s failure (503)');
  store.sweep(far + 86_400);
  t.same(store.snapshot(), { tokens: [], subjects: [], sessions: [] }, 'expired entries are swept');
});

/** Workers that served the audited requests since `from`. */
function auditWorkers(k: KeyholeProcess, from: number, reason: string): Set<number> {
  return new Set(
    k.logs
      .slice(from)
      .filter((l: LogLine) => l.kind === 'audit' && (l.audit as { reason?: string } | undefined)?.reason === reason)
      .map((l) => l.worker as number),
  );
}

t.test('two workers: revocation everywhere, a killed worker replaced, reload everywhere, drain', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'keyhole-cluster-'));
  writeFileSync(join(root, 'a.txt'), 'hello\n');
  const yaml = (extra: boolean) =>
    'workers: 2\n' +
    opsYaml(root, extra ? `  - name: extra\n    kind: local\n    match: local://extra/\n    root: ${root}\n` : '').replace('audit: false', 'audit: true');
  const k = await spawnKeyhole(yaml(false), { startTimeoutMs: 90_000 });
  t.teardown(() => k.stop());
  const workerPids = () => k.logs.filter((l) => l.msg === 'worker ready').map((l) => l.pid as number);
  t.equal(workerPids().length, 2, 'two workers listening');
  t.notOk(workerPids().includes(k.child.pid!), 'the primary serves no data');

  // A fresh connection per request, so the primary spreads them over both workers.
  // One HTTP/1.1 connection per request, so the primary spreads them over both workers (HTTP/2 would multiplex them onto one).
  const fresh = new Agent({ connect: { ca: readFileSync(testCerts().caCert) }, pipelining: 0, allowH2: false });
  t.teardown(() => fresh.close());
  const get = (uri: string, token: string) => k.get(dataPath(uri), { headers: { authorization: `Bearer ${token}` }, dispatcher: fresh });

  const alice = await k.token({ sub: 'alice' });
  const bob = await k.token({ sub: 'bob', scope: ['local://files/', 'local://extra/'] });
  const ready = await k.adminGet('/readyz');
  t.equal(ready.status, 200);

  // Revoke alice through the one admin listener: no worker may serve her token again.
  const revoked = await k.adminPost('/admin/revoke', { sub: 'alice' });
  t.equal(revoked.status, 200);
  let mark = k.logs.length;
  for (let i = 0; i < 12; i++) {
    const r = await get('local://files/a.txt', alice);
    t.equal(r.status, 401, `revoked token refused (${i})`);
  }
  await k.waitForLog(() => auditWorkers(k, mark, 'token_revoked').size === 2, 10_000, 'refusals audited by both workers');
  t.pass('both workers refused the revoked token');
  t.equal((await get('local://files/a.txt', bob)).status, 200, 'other subjects still served');

  // Kill one worker outright; traffic continues on the other, and a replacement starts —
  // from the config in force, even though the file now holds an edit not yet reloaded.
  k.rewriteConfig(yaml(false).replace('providers:', 'providers: [oops'));
  const [victim] = workerPids();
  const liveBefore = new Set(workerPids());
  process.kill(victim!, 'SIGKILL');
  const died = await k.waitForLog((l) => l.msg === 'worker died; replacing it' && l.pid === victim);
  t.equal(died.signal, 'SIGKILL');
  let during = 0;
  const replaced = k.waitForLog((l) => l.msg === 'worker ready' && !liveBefore.has(l.pid as number), 60_000, 'a replacement worker');
  let replacementUp = false;
  void replaced.then(() => (replacementUp = true), () => undefined);
  const statuses: number[] = [];
  while (!replacementUp) {
    statuses.push((await get('local://files/a.txt', bob)).status);
    during++;
  }
  t.same(statuses.filter((s) => s !== 200), [], 'every request served while the replacement starts');
  const replacement = (await replaced).pid as number;
  t.ok(during > 0, `${during} requests served by the surviving worker meanwhile`);
  t.not(replacement, victim);

  // The replacement got the revocations made before it existed.
  mark = k.logs.length;
  for (let i = 0; i < 12; i++) t.equal((await get('local://files/a.txt', alice)).status, 401);
  await k.waitForLog(() => auditWorkers(k, mark, 'token_revoked').size === 2, 10_000, 'refusals audited by both workers');
  t.pass('the replacement worker refuses the token revoked before it started');
  t.equal((await k.adminGet('/readyz')).status, 200, 'ready again with both workers');

  // A reload reaches every worker, and traffic during it loses nothing.
  let loading = true;
  const during2: number[] = [];
  const errors: string[] = [];
  const load = (async () => {
    while (loading) {
      try {
        during2.push((await get('local://files/a.txt', bob)).status);
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
  })();
  for (const extra of [true, false, true]) {
    k.rewriteConfig(yaml(extra));
    const reload = await k.adminPost('/admin/reload');
    t.equal(reload.status, 200);
    t.equal(reload.json.ok, true, `reload ${extra ? 'adding' : 'removing'} a provider applied by every worker`);
  }
  loading = false;
  await load;
  t.same(errors, [], 'no request failed during the cluster reload');
  t.same(during2.filter((s) => s !== 200), [], `every one of ${during2.length} requests during the reload was served`);
  mark = k.logs.length;
  for (let i = 0; i < 12; i++) t.equal((await get('local://extra/a.txt', bob)).status, 200, 'new provider served');
  await k.waitForLog(() => auditWorkers(k, mark, 'ok').size === 2, 10_000, 'new provider served by both workers');
  t.pass('both workers run the new config');

  // A bad reload is refused by the primary before any worker sees it.
  k.rewriteConfig(yaml(true).replace('workers: 2', 'workers: 0'));
  const bad = await k.adminPost('/admin/reload');
  t.equal(bad.status, 400);
  t.match((bad.json.problems as string[]).join('\n'), /^workers/m);

  // One /metrics for the group.
  const metrics = await k.adminGet('/metrics');
  t.equal(metrics.status, 200);
  const allowed = /keyhole_requests_total\{provider="extra",status="200",decision="allow"\} (\d+)/.exec(metrics.text);
  t.ok(allowed && Number(allowed[1]) >= 12, 'requests served by both workers are summed');
  t.match(metrics.text, /^keyhole_revocation_store_up 1$/m);
  // Reloads counted once per group reload (by the primary), not once per worker.
  t.match(metrics.text, /^keyhole_config_reloads_total\{result="ok"\} 3$/m, 'three group reloads applied');
  t.match(metrics.text, /^keyhole_config_reloads_total\{result="refused"\} 1$/m, 'one refused');
  t.match(metrics.text, /^keyhole_build_info\{version="[^"]+",node="v24\.[^"]+",commit="[^"]+"\} 1$/m, 'build info once, not per worker');
  t.match(metrics.text, /^keyhole_tls_certificate_not_after_seconds\{listener="data"\} \d{10}$/m, 'the workers’ certificate');
  t.match(metrics.text, /^keyhole_requests_in_flight 0$/m, 'nothing in flight across the workers');

  // SIGTERM: the whole group drains and exits 0; nothing is replaced.
  k.child.kill('SIGTERM');
  t.same(await k.exited, { code: 0, signal: null });
  t.equal(k.logs.filter((l) => l.msg === 'worker stopped').length, 2);
  t.notOk(k.logs.slice(k.logs.findIndex((l) => l.msg === 'draining')).some((l) => l.msg === 'worker died; replacing it'), 'no replacement during the drain');
});
