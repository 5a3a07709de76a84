// Two real Keyhole processes (`keyhole serve --config …`) share one redis-server over mTLS.
// A revocation answered by replica A's admin API must refuse the token on replica B, whose
// cache still holds "not revoked" for a minute: only pub/sub can carry it. The delay from
// A's answer to B's first 401 is measured and printed.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { Agent, request } from 'undici';
import { startRedis } from '../helpers/redis.js';
import { testCerts } from '../helpers/certs.js';
import { ADMIN_TOKEN, TEST_SECRET, baseYaml, dataUrl } from '../helpers/keyhole.js';
import { parseConfig } from '../../src/config/load.js';
import { signDevToken } from '../../src/auth/sign.js';

const REPO = resolve(import.meta.dirname, '../..');
const env = { ...process.env, KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN };

interface Replica {
  data: string;
  admin: string;
  child: ChildProcess;
  output(): string;
}

/** Starts `keyhole serve --config FILE` and waits for its listening and redis-up log lines. */
async function startReplica(configFile: string): Promise<Replica> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', configFile], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let listening: { data: { port: number }; admin: { port: number } } | undefined;
  let redisUp = false;
  const ready = new Promise<void>((resolvePromise, reject) => {
    const onLine = (line: string) => {
      if (!line.startsWith('{')) return;
      const rec = JSON.parse(line) as { msg: string; data?: { port: number }; admin?: { port: number } };
      if (rec.msg === 'keyhole listening') listening = rec as typeof listening;
      if (rec.msg === 'redis revocation store is up') redisUp = true;
      if (listening && redisUp) resolvePromise();
    };
    let partial = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      partial += b.toString();
      const lines = partial.split('\n');
      partial = lines.pop()!;
      lines.forEach(onLine);
    });
    child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    child.once('exit', (code) => reject(new Error(`keyhole exited (${code}):\n${out}`)));
  });
  await ready;
  return { data: `https://localhost:${listening!.data.port}`, admin: `http://127.0.0.1:${listening!.admin.port}`, child, output: () => out };
}

async function stopReplica(r: Replica): Promise<void> {
  if (r.child.exitCode !== null) return;
  const exited = once(r.child, 'exit');
  r.child.kill('SIGTERM');
  await exited;
}

t.test('revocation through replica A reaches replica B by pub/sub', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-replicas-'));
  writeFileSync(join(dir, 'a.txt'), 'shared bytes');
  const yaml = baseYaml(`revocation: { store: redis, cacheTtl: 60s }
redis:
${redis.yaml('  ', 'commandTimeout: 3s')}
providers:
  - name: files
    kind: local
    match: local://files/
    root: ${dir}
`).replace('log: { level: debug }', 'log: { level: info }');
  const file = join(dir, 'keyhole.yaml');
  writeFileSync(file, yaml);
  const config = parseConfig(yaml, { env });

  const [a, b] = await Promise.all([startReplica(file), startReplica(file)]);
  t.teardown(async () => {
    await Promise.all([stopReplica(a), stopReplica(b)]);
  });
  const dispatcher = new Agent({ connect: { ca: readFileSync(testCerts().caCert) } });
  t.teardown(() => dispatcher.close());
  const get = async (base: string, token: string) => {
    const res = await request(base + dataUrl('local://files/a.txt'), { headers: { authorization: `Bearer ${token}` }, dispatcher });
    await res.body.dump();
    return res.statusCode;
  };
  const revoke = async (body: object) => {
    const res = await request(`${a.admin}/admin/revoke`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await res.body.dump();
    return res.statusCode;
  };

  /** Warms B's cache, revokes through A, then asks B until it refuses. */
  const measure = async (token: string, body: object) => {
    t.equal(await get(b.data, token), 200, 'B serves the token');
    t.equal(await get(b.data, token), 200, 'B serves it from its cache');
    t.equal(await get(a.data, token), 200, 'A serves it too');
    const answer = await revoke(body);
    t.equal(answer, 200, 'A answers the revocation');
    if (answer !== 200) throw new Error('revocation refused');
    const answered = performance.now();
    let served = 0;
    for (;;) {
      const status = await get(b.data, token);
      if (status === 401) break;
      t.equal(status, 200);
      served++;
      if (performance.now() - answered > 10_000) throw new Error('B never refused the revoked token');
    }
    return { ms: performance.now() - answered, served };
  };

  const rounds: { kind: string; ms: number; served: number }[] = [];
  for (let i = 0; i < 5; i++) {
    const token = await signDevToken(config, { sub: `user-${i}`, scope: ['local://files/'], jti: `replica-jti-${i}` });
    rounds.push({ kind: 'jti', ...(await measure(token, { jti: `replica-jti-${i}` })) });
  }
  for (let i = 0; i < 3; i++) {
    const token = await signDevToken(config, { sub: `reset-user-${i}`, scope: ['local://files/'] });
    rounds.push({ kind: 'sub', ...(await measure(token, { sub: `reset-user-${i}` })) });
  }
  const sorted = rounds.map((r) => r.ms).sort((x, y) => x - y);
  const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
  const summary = `revocation propagation A→B (admin answer → first 401 on B, includes one HTTPS request to B): ` +
    `min ${fmt(sorted[0]!)}, median ${fmt(sorted[Math.floor(sorted.length / 2)]!)}, max ${fmt(sorted[sorted.length - 1]!)} over ${rounds.length} revocations; ` +
    `requests B still served after A's answer: ${rounds.reduce((n, r) => n + r.served, 0)}`;
  t.comment(summary);
  console.log(summary);
  for (const r of rounds) t.ok(r.ms < 60_000, `${r.kind}: refused on B in ${fmt(r.ms)}, well before B's 60 s cache could expire: pub/sub carried it`);
  t.notOk(a.output().includes(TEST_SECRET) || b.output().includes(ADMIN_TOKEN), 'no secret in the replicas\' logs');
});
