// Limits on the data route of a real Keyhole (in process, HTTPS): 429 with Retry-After and
// the reason code, audited with the rule that refused; a byte quota under both mid-body rules
// (finish: the crossing download completes, the next is refused; cut: a slow download is cut
// mid-body); a token's own tighter limits; the admin API (usage, reset, ban); readiness and
// metrics; the config check refusing a memory store for several workers.
import t, { type Test } from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { SignJWT } from 'jose';
import { ADMIN_TOKEN, auditFor, baseYaml, dataUrl, filesProviderYaml, startKeyhole, tempFiles, TEST_SECRET, type Running } from '../helpers/keyhole.ts';
import { httpProviderItem } from '../helpers/upstream.ts';
import { ConfigError, parseConfig } from '../../src/config/load.ts';

const KIB = Buffer.alloc(1000, 'k');

async function keyhole(t: Test, limits: string, opts: { extraProviders?: string; auth?: string } = {}): Promise<Running> {
  const root = tempFiles('limits', { 'a.bin': KIB, 'b.bin': KIB, 'c.bin': KIB });
  const k = await startKeyhole(baseYaml(filesProviderYaml(root) + (opts.extraProviders ?? '') + limits, { ...(opts.auth ? { auth: opts.auth } : {}) }));
  t.teardown(() => k.close());
  return k;
}

const bearer = async (k: Running, sub: string, scope = ['local://files/']) => ({ authorization: `Bearer ${await k.token({ sub, scope })}` });

async function admin(k: Running, method: 'GET' | 'POST', path: string, body?: unknown, auth = true) {
  const res = await request(k.admin + path, {
    method,
    headers: { ...(auth ? { authorization: `Bearer ${ADMIN_TOKEN}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
}

t.test('without a limits section nothing is limited, and nothing is built for it', async (t) => {
  const k = await keyhole(t, '');
  t.equal(k.server.current.limiter, undefined, 'no limiter');
  const h = await bearer(k, 'alice');
  for (let i = 0; i < 5; i++) t.equal((await k.get(dataUrl('local://files/a.bin'), h)).status, 200);
  t.equal((await admin(k, 'GET', '/admin/usage?sub=alice')).status, 400, 'usage: no limits configured');
  t.notOk((await k.server.current.metrics.registry.metrics()).includes('keyhole_limit'), 'no limit metrics shown');
});

t.test('rate: 429 rate_limited with Retry-After, audited with the rule; other subjects unaffected', async (t) => {
  const k = await keyhole(t, 'limits:\n  rules:\n    - name: annotator\n      rate: { perSecond: 0.5, burst: 2 }\n');
  const alice = await bearer(k, 'alice');
  t.equal((await k.get(dataUrl('local://files/a.bin'), alice)).status, 200);
  t.equal((await k.get(dataUrl('local://files/a.bin'), alice)).status, 200);
  const refused = await k.get(dataUrl('local://files/a.bin'), alice);
  t.equal(refused.status, 429, 'the third at once');
  t.equal(refused.headers['retry-after'], '2', 'Retry-After: one request every 2 s');
  const body = JSON.parse(refused.body.toString()) as { error: string; requestId: string };
  t.equal(body.error, 'rate_limited');
  t.equal(refused.headers['cache-control'], 'no-store');
  const audit = await auditFor(k, body.requestId);
  t.match(audit, { kind: 'data', sub: 'alice', reason: 'rate_limited', status: 429, decision: 'deny', detail: 'annotator rate', provider: 'files' }, 'audited with the rule and limit');
  t.equal((await k.get(dataUrl('local://files/a.bin'), await bearer(k, 'bob'))).status, 200, 'bob has his own bucket');
  const metrics = await k.server.current.metrics.registry.metrics();
  t.match(metrics, /^keyhole_limit_refusals_total\{rule="annotator",limit="rate"\} 1$/m, 'counted per rule and limit');
  t.match(metrics, /^keyhole_limits_store_up 1$/m);
  t.match(metrics, /^keyhole_limit_checks_total\{path="store"\} \d+$/m);
});

t.test('bytes, midBody finish: the download that crosses the quota completes; the next gets quota_exceeded', async (t) => {
  const k = await keyhole(t, "limits:\n  rules:\n    - name: annotator\n      bytes: { 1h: 2500 }\n    - name: everyone\n      per: []\n      bytes: { 1h: 1000000 }\n");
  const alice = await bearer(k, 'alice');
  for (const f of ['a', 'b', 'c']) {
    const res = await k.get(dataUrl(`local://files/${f}.bin`), alice);
    t.equal(res.status, 200, `${f}: admitted`);
    t.equal(res.body.length, 1000, `${f}: whole (the third crosses 2500 mid-body and is finished)`);
  }
  await k.server.current.limiter!.sync();
  const refused = await k.get(dataUrl('local://files/a.bin'), alice);
  t.equal(refused.status, 429);
  t.equal(JSON.parse(refused.body.toString()).error, 'quota_exceeded');
  const retry = Number(refused.headers['retry-after']);
  t.ok(retry >= 1 && retry <= 3600, `Retry-After: until the hour ends (${retry} s)`);
  t.equal((await k.get(dataUrl('local://files/a.bin'), await bearer(k, 'bob'))).status, 200, 'bob is unaffected');

  const usage = await admin(k, 'GET', '/admin/usage?sub=alice');
  t.equal(usage.status, 200);
  t.match(usage.json, { sub: 'alice', counters: [{ rule: 'annotator', limit: 'bytes', window: '1h', value: 3000, max: 2500, who: { sub: 'alice' } }] }, "alice's own counters (not everyone's)");
  const reset = await admin(k, 'POST', '/admin/usage/reset', { sub: 'alice' });
  t.match(reset, { status: 200, json: { reset: { sub: 'alice' } } });
  t.equal((await k.get(dataUrl('local://files/a.bin'), alice)).status, 200, 'served again after the reset');
  t.match((await admin(k, 'GET', '/admin/usage?sub=alice')).json, { counters: [{ value: 1000 }] });
  t.equal((await admin(k, 'GET', '/admin/usage?sub=alice', undefined, false)).status, 401, 'usage needs the admin credential');
  t.equal((await admin(k, 'POST', '/admin/usage', {})).status, 405, 'usage is read with GET');
  t.equal((await admin(k, 'POST', '/admin/usage/reset', {})).status, 400, 'reset needs sub');
});

t.test('bytes, midBody cut: a slow download is cut mid-body once the quota is reached', async (t) => {
  const CHUNK = Buffer.alloc(16 * 1024, 'x');
  let sent = 0;
  const upstream: Server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(CHUNK.length * 100) });
    let n = 0;
    const timer = setInterval(() => {
      if (res.destroyed || n === 100) {
        clearInterval(timer);
        if (!res.destroyed) res.end();
        return;
      }
      n++;
      sent += CHUNK.length;
      res.write(CHUNK);
    }, 10);
    req.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => upstream.close(() => r())));
  const port = (upstream.address() as AddressInfo).port;
  const k = await keyhole(t, "limits:\n  midBody: cut\n  redis: { sync: 50ms }\n  rules:\n    - name: annotator\n      bytes: { 1h: 200KiB }\n", {
    extraProviders: httpProviderItem('slow', 'https://slow.test/', `http://127.0.0.1:${port}/`),
  });
  const h = await bearer(k, 'alice', ['https://slow.test/']);
  const res = await request(k.base + dataUrl('https://slow.test/big'), { headers: h, dispatcher: k.dispatcher });
  t.equal(res.statusCode, 200, 'admitted: nothing used yet');
  const id = String(res.headers['x-request-id']);
  let got = 0;
  const read = (async () => {
    for await (const chunk of res.body) got += (chunk as Buffer).length;
  })();
  await t.rejects(read, 'the body ends with an error, not as complete');
  t.ok(got >= 200 * 1024 && got < CHUNK.length * 100, `cut after ${got} bytes of ${CHUNK.length * 100} (quota 204800)`);
  t.ok(got - 200 * 1024 < 30 * CHUNK.length, 'within about one sync of streaming past the quota');
  const audit = await auditFor(k, id);
  t.match(audit, { reason: 'quota_exceeded', aborted: true, status: 200, detail: 'annotator bytes/1h', decision: 'deny' }, 'audited as cut by the quota');
  t.ok(sent < CHUNK.length * 100, 'the upstream request was aborted too');
  t.match(await k.server.current.metrics.registry.metrics(), /^keyhole_limit_cut_total\{rule="annotator"\} 1$/m);
  const next = await k.get(dataUrl('https://slow.test/big'), h);
  t.equal(next.status, 429, 'and the next is refused');
});

t.test("a token's limits claim tightens the config's, never loosens it", async (t) => {
  const k = await keyhole(t, 'limits:\n  rules:\n    - name: annotator\n      rate: { perSecond: 0.1, burst: 5 }\n');
  const sign = (sub: string, limits: unknown) =>
    new SignJWT({ scope: ['local://files/'], limits })
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .setIssuer('test-issuer')
      .setAudience('keyhole')
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(Buffer.from(TEST_SECRET));
  const burst = async (token: string) => {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await k.get(dataUrl('local://files/a.bin'), { authorization: `Bearer ${token}` })).status);
    return statuses.filter((s) => s === 200).length;
  };
  t.equal(await burst(await sign('alice', { rate: { perSecond: 0.1, burst: 2 }, bytes: { '1d': '1MiB' } })), 2, "the token's burst of 2");
  t.equal(await burst(await sign('bob', { rate: { perSecond: 1000, burst: 1000 } })), 5, "a looser claim: the config's 5");
  const bad = await k.get(dataUrl('local://files/a.bin'), { authorization: `Bearer ${await sign('carol', { concurrent: -1 })}` });
  t.equal(bad.status, 401, 'a malformed limits claim refuses the token');
  t.equal(JSON.parse(bad.body.toString()).error, 'token_claims');
});

t.test('ban: a revocation with an end', async (t) => {
  const k = await keyhole(t, 'limits:\n  rules:\n    - name: annotator\n      rate: { perSecond: 100, burst: 100 }\n', { auth: 'clockTolerance: 0' });
  const before = await bearer(k, 'mallory');
  t.equal((await k.get(dataUrl('local://files/a.bin'), before)).status, 200);
  const now = Math.floor(Date.now() / 1000);
  const ban = await admin(k, 'POST', '/admin/ban', { sub: 'mallory', seconds: 2 });
  t.equal(ban.status, 200);
  const banned = ban.json.banned as { sub: string; until: string; issuedAtOrBefore: number };
  t.equal(banned.sub, 'mallory');
  t.ok(banned.issuedAtOrBefore >= now + 2 && banned.issuedAtOrBefore <= now + 3, 'every token issued until the ban ends');
  t.equal((await k.get(dataUrl('local://files/a.bin'), before)).status, 401, 'a token from before the ban: refused');
  t.equal((await k.get(dataUrl('local://files/a.bin'), await bearer(k, 'mallory'))).status, 401, 'a token minted during the ban: refused');
  t.equal((await k.get(dataUrl('local://files/a.bin'), await bearer(k, 'alice'))).status, 200, 'others are not banned');
  while (Math.floor(Date.now() / 1000) <= banned.issuedAtOrBefore) await new Promise((r) => setTimeout(r, 100));
  t.equal((await k.get(dataUrl('local://files/a.bin'), await bearer(k, 'mallory'))).status, 200, 'a token minted after the ban ends passes');
  t.equal((await admin(k, 'POST', '/admin/ban', { sub: 'mallory', seconds: 0 })).status, 400, 'seconds from 1');
  t.equal((await admin(k, 'POST', '/admin/ban', { sub: 'mallory', seconds: 1e9 })).status, 400, 'at most a year');
  t.equal((await admin(k, 'POST', '/admin/ban', { seconds: 10 })).status, 400, 'sub is required');
});

t.test('alerts are audit lines in the chain (msg alert); readiness shows the limits', async (t) => {
  const k = await keyhole(t, 'limits:\n  redis: { sync: 20ms }\n  alerts: { quota: [0.5] }\n  rules:\n    - name: annotator\n      bytes: { 1d: 4000 }\n');
  const alice = await bearer(k, 'alice');
  for (const f of ['a', 'b', 'c']) t.equal((await k.get(dataUrl(`local://files/${f}.bin`), alice)).status, 200);
  await k.server.current.limiter!.sync();
  const alerts = k.logs.filter((l) => l.msg === 'alert');
  t.equal(alerts.length, 1, 'one alert: 50% crossed once');
  t.match(alerts[0], { level: 'warn', kind: 'audit', stream: String, seq: Number, prev: String, alert: { alert: 'quota', rule: 'annotator', limit: 'bytes', window: '1d', threshold: 0.5, max: 4000, who: { sub: 'alice' } } });
  const ready = await request(k.admin + '/readyz');
  t.same(await ready.body.json(), { ready: true, revocation: true, limits: true, accepting: true }, '/readyz includes the limits');
});

t.test('the config check: a memory store for several workers, a redis store without redis:', async (t) => {
  const root = tempFiles('limits-config');
  const env = { KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN };
  const problems = (yaml: string): string[] => {
    try {
      parseConfig(yaml, { env });
      return [];
    } catch (err) {
      if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
      throw err;
    }
  };
  const limits = 'limits:\n  rules:\n    - name: annotator\n      rate: { perSecond: 1 }\n';
  t.same(problems(baseYaml(filesProviderYaml(root) + limits)), [], 'memory, one process: fine');
  t.match(problems('workers: 2\n' + baseYaml(filesProviderYaml(root) + limits)), [/^limits\.store: limits\.store memory counts in one process: with workers: 2/]);
  t.match(problems('workers: auto\n' + baseYaml(filesProviderYaml(root) + limits)), [/^limits\.store: .*workers: auto/]);
  t.match(problems(baseYaml(filesProviderYaml(root) + limits.replace('limits:\n', 'limits:\n  store: redis\n'))), [/^limits\.store: limits\.store redis needs the top-level redis: section/]);
  t.match(problems(baseYaml(filesProviderYaml(root) + 'limits:\n  rules:\n    - name: a\n      when: { provider: [nope] }\n      rate: { perSecond: 1 }\n')), [/no provider is named nope/]);
  t.match(problems(baseYaml(filesProviderYaml(root) + 'limits:\n  rules:\n    - name: a\n      rate: { perSecond: 1 }\n    - name: b\n      when: { sub: [x] }\n      rate: { perSecond: 2 }\n')), [/rule b can never apply: rule a before it/]);
  t.match(problems(baseYaml(filesProviderYaml(root) + 'limits:\n  rules:\n    - name: a\n      bytes: { 1w: 10GB }\n')), [/window "1w" must be like/]);
  t.match(problems(baseYaml(filesProviderYaml(root) + 'limits:\n  rules:\n    - name: a\n      bytes: { 1d: lots }\n')), [/must be a number of bytes/]);
  t.match(problems(baseYaml(filesProviderYaml(root) + 'limits:\n  rules:\n    - name: a\n')), [/a rule must limit something/]);
});
