// The limits engine on the memory store, with a clock the test moves: rate with a burst,
// concurrency, bytes and distinct objects per window (the mid-body rule both ways), which rule
// applies to whom, a token's own tighter limits, alerts once per crossing, usage and reset,
// and a store that cannot answer.
import t from 'tap';
import { SignJWT } from 'jose';
import { FakeTransfer, isAdmission, makeLimiter, metric, refusal, T0 } from './support.ts';
import type { LimitStore } from '../../src/limits/store.ts';
import { LimitsUnavailable, MemoryLimitStore } from '../../src/limits/store.ts';

const rules = (...r: Record<string, unknown>[]) => ({ rules: r });

t.test('rate: the burst at once, then one request per period, with Retry-After', async (t) => {
  const rig = makeLimiter(rules({ name: 'annotator', rate: { perSecond: 2, burst: 3 } }));
  t.teardown(() => rig.limiter.close());
  for (let i = 0; i < 3; i++) t.ok(isAdmission(await rig.admit({ sub: 'alice' })), `request ${i + 1} of the burst`);
  const r = refusal(await rig.admit({ sub: 'alice' }));
  t.equal(r?.reason, 'rate_limited', 'the fourth at once is refused');
  t.equal(r?.retryAfter, 1, 'Retry-After: 1 (a token comes back in 500 ms, rounded up)');
  t.equal(r?.detail, 'annotator rate');
  t.ok(isAdmission(await rig.admit({ sub: 'bob' })), 'another subject has its own bucket');
  rig.clock.now += 499;
  t.ok(refusal(await rig.admit({ sub: 'alice' })), 'not before the period');
  rig.clock.now += 1;
  t.ok(isAdmission(await rig.admit({ sub: 'alice' })), 'one period later, one more');
  t.ok(refusal(await rig.admit({ sub: 'alice' })), 'and only one');
  t.equal(await metric(rig.metrics, 'keyhole_limit_refusals_total', { rule: 'annotator', limit: 'rate' }), 3, 'refusals counted per rule and limit');
});

t.test('concurrent: slots taken while responses stream, back when they end', async (t) => {
  const rig = makeLimiter(rules({ name: 'dl', concurrent: 2 }));
  t.teardown(() => rig.limiter.close());
  const a = await rig.admit({ sub: 'alice' });
  const b = await rig.admit({ sub: 'alice' });
  t.ok(isAdmission(a) && isAdmission(b), 'two at once');
  const c = refusal(await rig.admit({ sub: 'alice' }));
  t.equal(c?.reason, 'rate_limited', 'a third is refused while two stream');
  t.equal(c?.detail, 'dl concurrent');
  t.equal(c?.retryAfter, 1);
  if (isAdmission(a)) a.done(true);
  t.ok(isAdmission(await rig.admit({ sub: 'alice' })), 'one ended: the next may start at once');
  t.ok(refusal(await rig.admit({ sub: 'alice' })), 'still two at most');
  await rig.limiter.sync();
  t.ok(refusal(await rig.admit({ sub: 'alice' })), 'a sync changes nothing while both stream');
});

t.test('bytes per window, midBody finish: the download that crosses is finished, the next refused', async (t) => {
  const rig = makeLimiter(rules({ name: 'annotator', bytes: { '1h': 1000 } }));
  t.teardown(() => rig.limiter.close());
  const first = new FakeTransfer();
  const a = await rig.admit({ sub: 'alice' }, { transfer: first });
  t.ok(isAdmission(a));
  first.outcome.bytes = 600;
  if (isAdmission(a)) a.done(true);
  const second = new FakeTransfer();
  const b = await rig.admit({ sub: 'alice' }, { transfer: second });
  t.ok(isAdmission(b), '600 of 1000 used: admitted');
  second.outcome.bytes = 300;
  await rig.limiter.sync();
  second.outcome.bytes = 700;
  await rig.limiter.sync();
  t.equal(second.cut, undefined, 'finish: never cut mid-body');
  if (isAdmission(b)) b.done(true);
  const r = refusal(await rig.admit({ sub: 'alice' }));
  t.equal(r?.reason, 'quota_exceeded', '1300 of 1000: the next is refused');
  t.equal(r?.detail, 'annotator bytes/1h');
  t.equal(r?.retryAfter, 3600, 'Retry-After: until the window ends (10:00 → 11:00 UTC)');
  const usage = await rig.limiter.usage('alice');
  t.match(usage, [{ rule: 'annotator', limit: 'bytes', window: '1h', value: 1300, max: 1000, who: { sub: 'alice' } }], 'usage shows the overshoot of the finished download');
  rig.clock.now += 3600_000;
  t.ok(isAdmission(await rig.admit({ sub: 'alice' })), 'the next window starts from zero');
});

t.test('bytes, midBody cut: a download still streaming when the quota is reached is cut at the next sync', async (t) => {
  const rig = makeLimiter({ midBody: 'cut', ...rules({ name: 'annotator', bytes: { '1d': 1000 } }) });
  t.teardown(() => rig.limiter.close());
  const big = new FakeTransfer();
  const other = new FakeTransfer();
  const a = await rig.admit({ sub: 'alice' }, { transfer: big });
  const b = await rig.admit({ sub: 'alice' }, { transfer: other });
  const c = new FakeTransfer();
  const bob = await rig.admit({ sub: 'bob' }, { transfer: c });
  t.ok(isAdmission(a) && isAdmission(b) && isAdmission(bob));
  big.outcome.bytes = 900;
  c.outcome.bytes = 900;
  await rig.limiter.sync();
  t.equal(big.cut, undefined, '900 of 1000: streaming on');
  big.outcome.bytes = 1200;
  await rig.limiter.sync();
  t.equal(big.cut, 'annotator bytes/1d', 'counted as it streams: cut once the quota is reached');
  t.equal(other.cut, 'annotator bytes/1d', "the subject's other download is cut too");
  t.equal(c.cut, undefined, 'another subject is not');
  t.equal(await metric(rig.metrics, 'keyhole_limit_cut_total', { rule: 'annotator' }), 2, 'cuts counted');
});

t.test('distinct objects per window: a second read of an object is free, an unserved one does not count', async (t) => {
  const rig = makeLimiter(rules({ name: 'annotator', objects: { '1d': 2 } }));
  t.teardown(() => rig.limiter.close());
  const get = async (uri: string, served = true) => {
    const r = await rig.admit({ sub: 'alice' }, { uri });
    if (isAdmission(r)) r.done(served);
    return r;
  };
  t.ok(isAdmission(await get('local://files/a')), 'a');
  t.ok(isAdmission(await get('local://files/missing', false)), 'a 404 is admitted');
  t.ok(isAdmission(await get('local://files/b')), 'b: the 404 did not count');
  const r = refusal(await get('local://files/c'));
  t.equal(r?.reason, 'quota_exceeded', 'a third distinct object is refused');
  t.equal(r?.detail, 'annotator objects/1d');
  t.ok(isAdmission(await get('local://files/a')), 'a again: already counted, free');
  await rig.limiter.sync();
  t.ok(isAdmission(await get('local://files/b')), 'after a sync too');
  t.ok(refusal(await get('local://files/c')), 'c still refused');
  t.match(await rig.limiter.usage('alice'), [{ limit: 'objects', value: 2, max: 2 }]);
});

t.test('rules: per `per`, the first whose `when` matches; different `per` all apply; a missing claim skips a rule', async (t) => {
  const rig = makeLimiter(
    rules(
      { name: 'exporter', when: { sub: ['svc-export'] }, per: ['sub'], rate: { perSecond: 100, burst: 5 } },
      { name: 's3-readers', when: { provider: ['s3'] }, per: ['sub'], rate: { perSecond: 100, burst: 2 } },
      { name: 'annotator', per: ['sub'], rate: { perSecond: 100, burst: 1 } },
      { name: 'org', per: ['org'], rate: { perSecond: 100, burst: 3 } },
    ),
  );
  t.teardown(() => rig.limiter.close());
  const burst = async (who: { sub: string; org?: string }, provider = 'files') => {
    let n = 0;
    while (isAdmission(await rig.admit(who, { provider })) && n < 50) n++;
    return n;
  };
  t.equal(await burst({ sub: 'alice' }), 1, 'the default rule for a subject without org');
  t.equal(await burst({ sub: 'svc-export' }), 5, 'a rule naming the subject replaces the default');
  t.equal(await burst({ sub: 'carol' }, 's3'), 2, 'a rule for one provider');
  t.equal(await burst({ sub: 'dave', org: 'acme' }), 1, 'the subject rule binds before the org rule');
  t.equal(await burst({ sub: 'erin', org: 'acme' }), 1, 'erin: 1 of the org burst');
  t.equal(await burst({ sub: 'frank', org: 'acme' }), 1, 'frank: the third of the org burst');
  t.equal(await burst({ sub: 'henry', org: 'acme' }), 0, 'the org as a whole: 3 at once');
  t.equal(await burst({ sub: 'grace', org: 'other' }), 1, 'another org has its own');
});

t.test("a token's limits claim tightens, never loosens; a malformed one is refused", async (t) => {
  const rig = makeLimiter(rules({ name: 'annotator', rate: { perSecond: 100, burst: 10 }, bytes: { '1d': '1KiB' } }));
  t.teardown(() => rig.limiter.close());
  const key = new TextEncoder().encode('k'.repeat(32));
  const token = (limits: unknown) => new SignJWT({ limits }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').sign(key);
  const tight = await token({ rate: { perSecond: 1, burst: 2 } });
  let n = 0;
  while (isAdmission(await rig.admit({ sub: 'alice' }, { token: tight })) && n < 50) n++;
  t.equal(n, 2, "the token's burst of 2, not the config's 10");
  const loose = await token({ rate: { perSecond: 1000, burst: 1000 } });
  n = 0;
  while (isAdmission(await rig.admit({ sub: 'bob' }, { token: loose })) && n < 50) n++;
  t.equal(n, 10, "a looser claim changes nothing: the config's 10 still hold");
  const bad = refusal(await rig.admit({ sub: 'carol' }, { token: await token({ rate: { perSecond: 'fast' } }) }));
  t.equal(bad?.reason, 'token_claims', 'a malformed limits claim refuses the token');
  t.match(bad?.detail, /claim limits: rate\.perSecond/);
});

t.test('alerts: once per threshold crossing, on the counter that crossed; refusals per subject per window', async (t) => {
  const rig = makeLimiter({ alerts: { quota: [0.5, 1], refusals: { count: 3, window: '1m' } }, ...rules({ name: 'annotator', bytes: { '1h': 1000 }, rate: { perSecond: 1, burst: 1 } }) });
  t.teardown(() => rig.limiter.close());
  const download = async (bytes: number) => {
    const tr = new FakeTransfer();
    const a = await rig.admit({ sub: 'alice' }, { transfer: tr });
    tr.outcome.bytes = bytes;
    if (isAdmission(a)) a.done(true);
    rig.clock.now += 1000;
    await rig.limiter.sync();
    return a;
  };
  await download(400);
  t.equal(rig.alerts.length, 0, '40%: nothing');
  await download(200);
  t.equal(rig.alerts.length, 1, '60%: crossed 50%');
  t.match(rig.alerts[0], { alert: 'quota', rule: 'annotator', limit: 'bytes', window: '1h', threshold: 0.5, used: 600, max: 1000, who: { sub: 'alice' } });
  await download(100);
  t.equal(rig.alerts.length, 1, '70%: no second alert for the same crossing');
  await download(500);
  t.equal(rig.alerts.length, 2, '120%: crossed 100%');
  t.match(rig.alerts[1], { threshold: 1, used: 1200 });
  await rig.limiter.reset('alice');
  await download(600);
  t.equal(rig.alerts.length, 3, 'after a reset, a new crossing alerts again');

  rig.clock.now = T0 + 7200_000; // a new minute and hour
  for (let i = 0; i < 6; i++) await rig.admit({ sub: 'mallory' });
  await rig.limiter.sync();
  const refusals = rig.alerts.filter((a) => a.alert === 'refusals');
  t.equal(refusals.length, 1, '5 refusals of 3 allowed in a minute: one alert');
  t.match(refusals[0], { limit: 'refusals', who: { sub: 'mallory' }, window: '1m', used: 5, max: 3 });
  for (let i = 0; i < 5; i++) await rig.admit({ sub: 'mallory' });
  await rig.limiter.sync();
  t.equal(rig.alerts.filter((a) => a.alert === 'refusals').length, 1, 'more refusals in the same minute: no second alert');
  t.equal(await metric(rig.metrics, 'keyhole_limit_alerts_total', { alert: 'quota' }), 3);
});

t.test('usage and reset: what a subject has used, forgotten on demand', async (t) => {
  const rig = makeLimiter(rules({ name: 'annotator', concurrent: 4, rate: { perSecond: 10, burst: 20 }, bytes: { '1d': '1MB' }, objects: { '1d': 10 } }));
  t.teardown(() => rig.limiter.close());
  const tr = new FakeTransfer();
  const a = await rig.admit({ sub: 'alice' }, { transfer: tr });
  tr.outcome.bytes = 5000;
  if (isAdmission(a)) a.done(true);
  const held = await rig.admit({ sub: 'alice' }, { uri: 'local://files/b' });
  await rig.limiter.sync();
  const usage = await rig.limiter.usage('alice');
  const by = (limit: string) => usage.find((u) => u.limit === limit);
  t.match(by('bytes'), { value: 5000, max: 1_000_000, window: '1d', windowStart: '2030-01-15T00:00:00.000Z' });
  t.match(by('objects'), { value: 1, max: 10 });
  t.match(by('concurrent'), { value: 1, max: 4 }, 'one download streaming');
  t.match(by('rate'), { value: 18, max: 20 }, 'two tokens spent of 20');
  t.same(await rig.limiter.usage('bob'), [], 'nothing for a subject never seen');
  t.ok((await rig.limiter.reset('alice')) >= 3, 'counters removed');
  t.same((await rig.limiter.usage('alice')).filter((u) => u.limit !== 'concurrent'), [], 'forgotten');
  if (isAdmission(held)) held.done(false);
});

t.test('a store that cannot answer: fail closed by default, or serve unchecked (and still count) when allowed', async (t) => {
  let up = false;
  const inner = new MemoryLimitStore('keyhole:', () => T0);
  const flaky: LimitStore = {
    run: (ops) => (up ? inner.run(ops) : Promise.reject(new LimitsUnavailable('down'))),
    connected: () => up,
    readSubject: (s, r) => inner.readSubject(s, r),
    resetSubject: (s) => inner.resetSubject(s),
    close: async () => {},
  };
  const deny = makeLimiter({ store: 'redis', ...rules({ name: 'x', bytes: { '1h': 100 } }) }, { store: flaky });
  t.teardown(() => deny.limiter.close());
  const r = refusal(await deny.admit({ sub: 'alice' }));
  t.equal(r?.reason, 'limits_unavailable', 'deny: 503 limits_unavailable');
  t.equal(deny.limiter.ready(), false, 'not ready');
  t.equal(await metric(deny.metrics, 'keyhole_limits_unavailable_total', { action: 'denied' }), 1);

  const allow = makeLimiter({ store: 'redis', onRedisError: 'allow', ...rules({ name: 'x', bytes: { '1h': 100 } }) }, { store: flaky });
  t.teardown(() => allow.limiter.close());
  t.equal(allow.limiter.ready(), true, 'allow: ready');
  const tr = new FakeTransfer();
  const a = await allow.admit({ sub: 'alice' }, { transfer: tr });
  t.ok(isAdmission(a), 'allow: served unchecked');
  tr.outcome.bytes = 150;
  if (isAdmission(a)) a.done(true);
  await allow.limiter.sync();
  up = true;
  await allow.limiter.sync();
  t.match(await allow.limiter.usage('alice'), [{ limit: 'bytes', value: 150 }], 'what was served meanwhile is written once the store is back');
  t.equal(deny.limiter.ready(), true, 'deny: ready again once the store answers');
  t.equal(refusal(await deny.admit({ sub: 'alice' }))?.reason, 'quota_exceeded', 'and decides again (150 of 100 used)');
});
