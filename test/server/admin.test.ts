// The admin listener: revocation by jti and by sub (admin credential required), effective
// on the next request even for a token sitting in the verify cache; health, readiness and
// metrics; bound to loopback unless configured otherwise.
import t, { type Test } from 'tap';
import { request } from 'undici';
import { parseConfig } from '../../src/config/load.ts';
import { ADMIN_TOKEN, auditFor, baseYaml, dataUrl, filesProviderYaml, startKeyhole, tempFiles, TEST_SECRET, type Running } from '../helpers/keyhole.ts';
import { keyholeOnRedis, testClient } from '../helpers/redis.ts';
import { MemoryRevocationStore } from '../../src/auth/revocation.ts';

const root = tempFiles('admin');
const yaml = baseYaml(filesProviderYaml(root));

async function admin(k: Running, path: string, opts: { method?: 'GET' | 'POST' | 'PUT'; auth?: string; body?: unknown; type?: string } = {}) {
  const res = await request(k.admin + path, {
    method: opts.method ?? 'POST',
    headers: {
      ...(opts.auth !== undefined ? { authorization: opts.auth } : {}),
      ...(opts.body !== undefined ? { 'content-type': opts.type ?? 'application/json' } : {}),
    },
    ...(opts.body !== undefined ? { body: typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body) } : {}),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
}

const read = (k: Running, token: string) => k.get(dataUrl('local://files/a.txt'), { authorization: `Bearer ${token}` });

t.test('revoke by jti: the next request is refused, even from the verify cache', async (t) => {
  const k = await startKeyhole(yaml);
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['local://files/'], jti: 'token-1' });
  const other = await k.token({ scope: ['local://files/'], jti: 'token-2' });
  t.equal((await read(k, token)).status, 200);
  t.equal((await read(k, token)).status, 200, 'second request: served from the verify cache');
  t.equal((await read(k, other)).status, 200);
  const metrics = await admin(k, '/metrics', { method: 'GET' });
  t.match(metrics.text, /keyhole_token_cache_total\{result="hit"\} 1\n/, 'the hot token cost no second signature check');

  const missing = await admin(k, '/admin/revoke', { body: { jti: 'token-1' } });
  t.equal(missing.status, 401, 'no admin credential');
  t.equal(missing.json().error, 'admin_unauthorized');
  const wrong = await admin(k, '/admin/revoke', { auth: 'Bearer not-the-admin-token', body: { jti: 'token-1' } });
  t.equal(wrong.status, 401, 'wrong admin credential');
  const sessionToken = await admin(k, '/admin/revoke', { auth: `Bearer ${token}`, body: { jti: 'token-1' } });
  t.equal(sessionToken.status, 401, 'a session token is not an admin credential');
  t.equal((await read(k, token)).status, 200, 'refused admin calls revoked nothing');

  const ok = await admin(k, '/admin/revoke', { auth: `Bearer ${ADMIN_TOKEN}`, body: { jti: 'token-1' } });
  t.equal(ok.status, 200);
  t.same(ok.json(), { revoked: { jti: 'token-1' } });
  const refused = await read(k, token);
  t.equal(refused.status, 401);
  t.equal(JSON.parse(refused.body.toString()).error, 'token_revoked');
  t.match(await auditFor(k, refused.headers['x-request-id'] as string), { decision: 'deny', reason: 'token_revoked', sub: 'alice', unverified: true }, 'a refused token still names its subject, marked unverified');
  t.equal((await read(k, other)).status, 200, 'another jti is untouched');
  t.notOk(k.rawLogs().includes(ADMIN_TOKEN), 'the admin credential never appears in logs');
});

t.test('revoke by sub: every token of the subject issued up to now dies, later ones live', async (t) => {
  const k = await startKeyhole(yaml);
  t.teardown(() => k.close());
  const now = Math.floor(Date.now() / 1000);
  const alice = await k.token({ sub: 'alice', scope: ['local://files/'], iat: now - 5 });
  const bob = await k.token({ sub: 'bob', scope: ['local://files/'], iat: now - 5 });
  t.equal((await read(k, alice)).status, 200);
  const res = await admin(k, '/admin/revoke', { auth: `Bearer ${ADMIN_TOKEN}`, body: { sub: 'alice' } });
  const after = Math.floor(Date.now() / 1000);
  t.equal(res.status, 200);
  t.equal(res.json().revoked.sub, 'alice');
  t.ok(res.json().revoked.issuedAtOrBefore >= now);
  t.equal(JSON.parse((await read(k, alice)).body.toString()).error, 'token_revoked', 'cached token of alice refused');
  t.equal((await read(k, bob)).status, 200, 'bob untouched');
  // The cut-off is clockTolerance ahead of the revocation (a token minted just before it, on
  // a clock that far ahead, must die too): a token issued after the cut-off works as soon as
  // its iat is within the tolerance of our clock, one second after the revocation.
  const cutoff = res.json().revoked.issuedAtOrBefore as number;
  const revokedAt = cutoff - k.config.auth.clockTolerance;
  t.ok(revokedAt >= now && revokedAt <= after, 'the cut-off is the revocation second + the clock tolerance');
  const later = await k.token({ sub: 'alice', scope: ['local://files/'], iat: cutoff + 1 });
  await untilAcceptable(k, cutoff + 1);
  t.equal((await read(k, later)).status, 200, 'a token issued after the reset works');
});

/** Waits until a token with this iat is no longer "issued in the future" (beyond the tolerance). */
async function untilAcceptable(k: Running, iat: number): Promise<void> {
  while (Date.now() < (iat - k.config.auth.clockTolerance) * 1000) await new Promise((r) => setTimeout(r, 50));
}

/** Admin-revokes `sub` and `jti` on `k`; `ahead`'s iat is 20 s ahead of our clock (within the 30 s tolerance). */
async function revokeOnClockAhead(t: Test, k: Running) {
  const now = Math.floor(Date.now() / 1000);
  const ahead = await k.token({ sub: 'carol', scope: ['local://files/'], iat: now + 20 });
  t.equal((await read(k, ahead)).status, 200, "a token from an issuer whose clock is 20 s ahead is accepted (tolerance 30 s)");
  const res = await admin(k, '/admin/revoke', { auth: `Bearer ${ADMIN_TOKEN}`, body: { sub: 'carol' } });
  t.equal(res.status, 200);
  const refused = await read(k, ahead);
  t.equal(refused.status, 401, 'minted before the revocation on a clock ahead of ours: dead');
  t.match(refused.body.toString(), /"error":"token_revoked"/);

  const jtiToken = await k.token({ scope: ['local://files/'], jti: 'short-exp' });
  t.equal((await admin(k, '/admin/revoke', { auth: `Bearer ${ADMIN_TOKEN}`, body: { jti: 'short-exp', exp: now + 5 } })).status, 200);
  t.equal((await read(k, jtiToken)).status, 401, 'revoked at once');
  return now;
}

t.test('revocations outlive every token they kill (memory store): a clock ahead, an early exp', async (t) => {
  // What runtime.ts gives the store for the default auth settings (maxTokenLifetime 1 d, tolerance 30 s).
  const store = new MemoryRevocationStore(86_400 + 30);
  const k = await startKeyhole(yaml, { revocation: store });
  t.teardown(async () => {
    await k.close();
    await store.close();
  });
  const now = await revokeOnClockAhead(t, k);
  const horizon = Math.ceil(k.config.auth.maxTokenLifetime / 1000) + 2 * k.config.auth.clockTolerance;
  store.sweep(now + horizon - 1);
  t.equal(store.isRevoked({ sub: 'x', jti: 'short-exp' } as never), true, 'the jti is kept past the exp the caller gave, until no token can be accepted again');
  t.equal(store.isRevoked({ sub: 'carol', iat: now + 20 } as never), true, 'and the subject revocation too');
});

t.test('revocations outlive every token they kill (Redis store): a clock ahead, an early exp', async (t) => {
  const { k, r } = await keyholeOnRedis(t, root);
  const redis = await testClient(r, { name: 'test-admin' });
  t.teardown(() => redis.disconnect());
  await revokeOnClockAhead(t, k);
  const horizon = Math.ceil(k.config.auth.maxTokenLifetime / 1000) + 2 * k.config.auth.clockTolerance;
  const ttl = await redis.ttl('keyhole:revoked:jti:short-exp');
  t.ok(ttl > horizon - 10 && ttl <= horizon, `the jti is kept in Redis for the horizon, not 5 s (ttl ${ttl}, horizon ${horizon})`);
});

t.test('admin request validation: each refusal says what to change', async (t) => {
  const k = await startKeyhole(yaml);
  t.teardown(() => k.close());
  const auth = `Bearer ${ADMIN_TOKEN}`;
  const refused = async (t: Test, path: string, opts: NonNullable<Parameters<typeof admin>[2]>, status: number, error: string, message: RegExp) => {
    const r = await admin(k, path, opts);
    t.equal(r.status, status, `${opts.method ?? 'POST'} ${path}: ${status}`);
    const body = r.json() as { error: string; message: string; requestId: string };
    t.equal(body.error, error);
    t.match(body.message, message);
    t.match(body.requestId, /^[0-9a-f-]{36}$/);
    return r;
  };
  await refused(t, '/admin/revoke', { auth, body: {} }, 400, 'bad_request', /^\/admin\/revoke: give jti \(one token\) or sub/);
  await refused(t, '/admin/revoke', { auth, body: { jti: 'a', sub: 'b' } }, 400, 'bad_request', /give jti or sub, not both/);
  await refused(t, '/admin/revoke', { auth, body: { jti: 5 } }, 400, 'bad_request', /jti must be a string of 1 to 512 characters/);
  await refused(t, '/admin/revoke', { auth, body: [] }, 400, 'bad_request', /the body must be a JSON object/);
  await refused(t, '/admin/revoke', { auth, body: { jti: 'a', exp: 'soon' } }, 400, 'bad_request', /exp must be the token's exp claim/);
  await refused(t, '/admin/revoke', { auth, body: '{x' }, 400, 'bad_request', /takes a JSON body .*: body is not valid JSON/);
  await refused(t, '/admin/revoke', { auth, body: { jti: 'a' }, type: 'text/plain' }, 415, 'body_type', /content-type must be application\/json/);
  await refused(t, '/admin/revoke', { auth, body: { jti: 'x'.repeat(5000) } }, 413, 'body_too_large', /body too large/);
  await refused(t, '/admin/revoke', { auth: 'Bearer wrong', body: { jti: 'a' } }, 401, 'admin_unauthorized', /missing or wrong/);
  // A known path with another method: 405 naming the one it takes, never the data routes' text.
  const get = await refused(t, '/admin/revoke', { method: 'GET', auth }, 405, 'method_not_allowed', /^\/admin\/revoke takes POST, not GET$/);
  t.equal(get.headers.allow, 'POST');
  const post = await refused(t, '/healthz', { method: 'POST' }, 405, 'method_not_allowed', /^\/healthz takes GET or HEAD, not POST$/);
  t.equal(post.headers.allow, 'GET, HEAD');
  // Unknown paths: 404 whatever the method, listing what the listener serves.
  for (const method of ['GET', 'POST', 'PUT'] as const) {
    for (const path of ['/nope', '/admin/nope', '/admin', '/healthz/x']) await refused(t, path, { method, auth }, 404, 'route_not_found', /^no admin route at \/[a-z/]*: the admin listener serves GET \/healthz, GET \/readyz, GET \/metrics, POST \/admin\/revoke, /);
  }
  const jwtPath = await refused(t, '/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl', { method: 'GET' }, 404, 'route_not_found', /^no admin route at \/\[redacted-jwt\]: /);
  t.notMatch(jwtPath.text, /eyJhbGci/, 'a token-shaped path is not echoed back');
  const noReload = await refused(t, '/admin/reload', { auth }, 404, 'route_not_found', /no admin route/);
  t.notMatch((noReload.json() as { message: string }).message.split('serves ')[1], /reload/, 'no reload hook: the route is not offered');
  t.equal((await admin(k, '/admin/revoke', { auth, body: { jti: 'j', exp: Math.floor(Date.now() / 1000) + 60 } })).status, 200);
});

t.test('admin actions are refused when no admin credential is configured', async (t) => {
  const k = await startKeyhole(yaml.replace(/ {2}token: \$\{env:KEYHOLE_TEST_ADMIN\}\n/, ''));
  t.teardown(() => k.close());
  t.equal((await admin(k, '/admin/revoke', { auth: 'Bearer ', body: { jti: 'x' } })).status, 401);
  t.equal((await admin(k, '/admin/revoke', { auth: `Bearer ${ADMIN_TOKEN}`, body: { jti: 'x' } })).status, 401);
});

t.test('healthz, readyz, metrics', async (t) => {
  const k = await startKeyhole(yaml);
  t.teardown(() => k.close());
  const health = await admin(k, '/healthz', { method: 'GET' });
  t.equal(health.status, 200);
  t.same(health.json(), { status: 'ok' });
  const ready = await admin(k, '/readyz', { method: 'GET' });
  t.equal(ready.status, 200);
  t.same(ready.json(), { ready: true, revocation: true, accepting: true });

  const token = await k.token({ scope: ['local://files/'] });
  await read(k, token);
  await read(k, token);
  await k.get(dataUrl('local://files/a.txt'), { authorization: 'Bearer a.b.c' });
  await k.get(dataUrl('local://files/a.txt'));
  await k.get(dataUrl('local://files/missing.txt'), { authorization: `Bearer ${token}` });
  await k.get(dataUrl('local://other/a.txt'), { authorization: `Bearer ${token}` });
  const m = (await admin(k, '/metrics', { method: 'GET' })).text;
  t.match(m, /keyhole_requests_total\{provider="files",status="200",decision="allow"\} 2\n/);
  t.match(m, /keyhole_requests_total\{provider="files",status="404",decision="allow"\} 1\n/);
  t.match(m, /keyhole_requests_total\{provider="-",status="401",decision="deny"\} 2\n/);
  t.match(m, /keyhole_requests_total\{provider="-",status="403",decision="deny"\} 1\n/);
  t.match(m, /keyhole_token_failures_total\{reason="token_missing"\} 1\n/);
  t.match(m, /keyhole_token_failures_total\{reason="token_malformed"\} 1\n/);
  t.match(m, /keyhole_token_cache_total\{result="hit"\} 3\n/);
  t.match(m, /keyhole_bytes_sent_total\{provider="files"\} 10\n/);
  t.match(m, /keyhole_request_duration_seconds_count\{provider="files"\} 3\n/);
  t.match(m, /keyhole_revocation_store_up 1\n/);
  t.notOk(m.includes(token), 'no token in metrics');

});

t.test('the admin listener is bound to loopback by default', async (t) => {
  const cfg = parseConfig(yaml.replace(/admin:\n {2}listen: \{[^}]*\}\n/, 'admin:\n'), { env: { KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN } });
  t.same(cfg.admin.listen, { host: '127.0.0.1', port: 9091 });
});
