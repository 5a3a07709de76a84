// Introspection with Label Studio-like signed-cookie sessions (issue 12): the app's own
// logout cannot invalidate a cookie it signed, so Keyhole records a logout that passes its
// app front and refuses that cookie afterwards (auth.introspect.logout); a revoked subject
// stays refused through introspection; a Bearer JWT from the app's issuer goes to the app;
// introspection has an off switch. Real Keyhole, real loopback app, real TLS Redis.
import t from 'tap';
import { SignJWT } from 'jose';
import { request } from 'undici';
import { ADMIN_TOKEN, baseYaml, dataUrl, startKeyhole, type Running } from '../helpers/keyhole.ts';
import { redisRevocationYaml, startRedis } from '../helpers/redis.ts';
import { startTestApp, type TestApp } from '../app/test-app.ts';
import { MemoryRevocationStore, RevocationUnavailable } from '../../src/auth/revocation.ts';
import type { RedisRevocationStore } from '../../src/auth/revocation-redis.ts';
import { sessionCookie } from '../../src/auth/introspect.ts';

const samples = `${process.cwd()}/samples`;
const PAT_SECRET = new TextEncoder().encode('label-studio-pat-secret-0123456789abcdef');

/** Signed-cookie sessions: `sessionid=signed-<id>` is valid until it expires, logout or not. */
let app: TestApp;
t.before(async () => {
  app = await startTestApp({
    '/api/current-user/whoami': (req, res) => {
      const cookie = /(?:^|;\s*)sessionid=signed-(\d+)(?:;|$)/.exec(req.headers.cookie ?? '');
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      const id = cookie?.[1] ?? (bearer ? 'pat-user' : undefined);
      if (!id) return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"detail":"no"}');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: Number(id) || id }));
    },
    '/user/logout': (_req, res) => void res.writeHead(302, { location: '/user/login', 'set-cookie': 'sessionid=""; Max-Age=0; Path=/' }).end(),
  });
});
t.teardown(() => app.close());

const whoamiCalls = () => app.requests.filter((r) => r.url === '/api/current-user/whoami').length;
const logoutsSeen = () => app.requests.filter((r) => r.url.toLowerCase().includes('logout')).length;
const errorOf = (b: Buffer) => JSON.parse(b.toString()).error as string;

function yaml(introspect = '', extra = ''): string {
  return baseYaml(`providers:
  - { name: samples, kind: local, match: "local://samples/", root: ${samples} }
app:
  upstream: ${app.origin}
${extra}`).replace(
    'auth:\n',
    `auth:
  introspect:
    url: ${app.origin}/api/current-user/whoami
    cacheTtl: 60s
    providers: [samples]
    logout: { paths: [/user/logout], sessionCookie: sessionid, remember: 1h }
${introspect}`,
  );
}

const A = 'local://samples/hello.txt';
const B = 'local://samples/gradient.png';
const read = (k: Running, uri: string, headers: Record<string, string>) => k.get(dataUrl(uri), headers);

t.test('logout through Keyhole ends the cookie at once; the app still gets the logout', async (t) => {
  const k = await startKeyhole(yaml());
  t.teardown(() => k.close());
  const cookie = { cookie: 'sessionid=signed-42; csrftoken=abc' };
  t.equal((await read(k, A, cookie)).status, 200, 'logged in: the app vouches');

  const logout = await k.get('/user/logout', cookie);
  t.equal(logout.status, 302, "the app's own logout answer comes back");
  t.equal(app.requests.at(-1)?.url, '/user/logout', 'the logout was forwarded to the app');

  const before = whoamiCalls();
  const replay = await read(k, A, cookie);
  t.equal(replay.status, 401, 'the old cookie, replayed, is refused (the app would still accept it)');
  t.equal(errorOf(replay.body), 'session_logged_out');
  t.equal(whoamiCalls(), before, 'without asking the app');
  const dup = await read(k, A, { cookie: 'sessionid=signed-7; sessionid=signed-42' });
  t.equal(errorOf(dup.body), 'session_logged_out', 'a second value of the cookie does not hide the dead one (Django reads the last)');
  t.equal((await read(k, A, { cookie: 'sessionid=signed-43' })).status, 200, 'another session is untouched');
  t.notOk(k.rawLogs().includes('signed-42'), 'the cookie value never appears in logs');
});

t.test('logout paths match like app.methods paths: dot segments, case, any method, below the prefix', async (t) => {
  const k = await startKeyhole(yaml());
  t.teardown(() => k.close());
  const spellings: [string, 'GET' | 'POST', number][] = [
    ['/USER/./Logout', 'GET', 101],
    ['/user/logout/', 'POST', 102],
    ['/user//logout?next=/', 'GET', 103],
    ['/user/logout/all', 'GET', 104],
  ];
  for (const [path, method, id] of spellings) {
    const cookie = { cookie: `sessionid=signed-${id}` };
    t.equal((await read(k, A, cookie)).status, 200);
    await k.get(path, cookie, method, method === 'POST' ? '' : undefined);
    t.equal(errorOf((await read(k, A, cookie)).body), 'session_logged_out', `${method} ${path} logs the cookie out`);
  }
  const other = { cookie: 'sessionid=signed-105' };
  await k.get('/user/logoutx', other);
  await k.get('/user', other);
  t.equal((await read(k, A, other)).status, 200, 'neighbouring paths are not logouts');
});

t.test('only sessions the app knows are recorded: junk cookies posted to the logout cost nothing', async (t) => {
  const k = await startKeyhole(yaml());
  t.teardown(() => k.close());
  const store = k.server.current.revocation;
  await k.get('/user/logout', { cookie: 'sessionid=junk-1' });
  const [junk] = sessionCookie({ cookie: 'sessionid=junk-1' }, 'sessionid').hashes;
  t.equal(await store.isSessionRevoked(junk!), false, 'a cookie the app refuses is not kept');
  await k.get('/user/logout', { cookie: 'sessionid=signed-50' });
  const [real] = sessionCookie({ cookie: 'sessionid=signed-50' }, 'sessionid').hashes;
  t.equal(await store.isSessionRevoked(real!), true, 'a real one is, by hash');
  t.equal((await read(k, A, { cookie: Array.from({ length: 17 }, (_, i) => `sessionid=signed-${i}`).join('; ') })).status, 401, 'seventeen values of the cookie: refused, not looked up one by one');
});

t.test('the store cannot record the logout: 503, not forwarded (fail closed)', async (t) => {
  class Unrecordable extends MemoryRevocationStore {
    override async revokeSession(): Promise<void> {
      throw new RevocationUnavailable('store unreachable');
    }
  }
  const k = await startKeyhole(yaml(), { revocation: new Unrecordable(3600) });
  t.teardown(() => k.close());
  const seen = logoutsSeen();
  const res = await k.get('/user/logout', { cookie: 'sessionid=signed-60' });
  t.equal(res.status, 503);
  t.equal(errorOf(res.body), 'revocation_unavailable');
  t.equal(logoutsSeen(), seen, 'the app never saw a logout Keyhole could not record');
});

t.test('issue scenario: token scoped to A, subject revoked, DELETE /v1/session, the app cookie asks for A and B', async (t) => {
  const k = await startKeyhole(yaml());
  t.teardown(() => k.close());
  const appCookie = 'sessionid=signed-77';
  t.equal((await read(k, B, { cookie: appCookie })).status, 200, 'before: the app cookie alone reads B');
  const token = await k.token({ sub: '77', uri: A });
  const set = await k.get('/v1/session', { authorization: `Bearer ${token}` }, 'POST');
  t.equal(set.status, 204);
  const keyholeCookie = String(set.headers['set-cookie']).split(';')[0]!;
  t.equal((await read(k, A, { cookie: `${keyholeCookie}; ${appCookie}` })).status, 200, 'the token reads A');

  const revoke = await request(`${k.admin}/admin/revoke`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ sub: '77' }) });
  t.equal(revoke.statusCode, 200);
  await revoke.body.dump();
  t.equal(errorOf((await read(k, A, { cookie: `${keyholeCookie}; ${appCookie}` })).body), 'token_revoked', 'the token is revoked');

  t.equal((await k.get('/v1/session', { cookie: keyholeCookie }, 'DELETE')).status, 204, 'the Keyhole cookie is cleared');
  for (const uri of [A, B]) {
    const res = await read(k, uri, { cookie: appCookie });
    t.equal(res.status, 401, `${uri}: the revoked subject does not come back through introspection`);
    t.equal(errorOf(res.body), 'token_revoked');
  }
  const audit = k.audits().at(-1);
  t.match(audit, { sub: '77' }, 'the refusal names the subject');
  t.equal((await read(k, B, { cookie: 'sessionid=signed-78' })).status, 200, 'other users are untouched');
});

t.test('subjectPrefix: the introspected subject is the string the app puts in its tokens', async (t) => {
  const k = await startKeyhole(yaml('    subjectPrefix: "ls:"\n'));
  t.teardown(() => k.close());
  const ok = await read(k, A, { cookie: 'sessionid=signed-5' });
  t.equal(ok.status, 200);
  t.match(k.audits().find((a) => a.id === ok.headers['x-request-id']), { sub: 'ls:5', tokenSource: 'introspect' });
  await request(`${k.admin}/admin/revoke`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ sub: 'ls:5' }) }).then((r) => r.body.dump());
  t.equal(errorOf((await read(k, A, { cookie: 'sessionid=signed-5' })).body), 'token_revoked', 'revoking ls:5 covers the introspected session');
});

t.test("a Bearer JWT from the app's issuer goes to introspection; a Keyhole token never does", async (t) => {
  const k = await startKeyhole(yaml());
  t.teardown(() => k.close());
  const pat = await new SignJWT({ token_type: 'access', user_id: 3 }).setProtectedHeader({ alg: 'HS256' }).setIssuer('label-studio').setSubject('3').setExpirationTime('5m').sign(PAT_SECRET);
  const before = whoamiCalls();
  const res = await read(k, A, { authorization: `Bearer ${pat}` });
  t.equal(res.status, 200, "the app's personal access token is judged by the app");
  t.equal(whoamiCalls(), before + 1);
  t.equal(app.requests.at(-1)?.headers.authorization, `Bearer ${pat}`, 'forwarded as it came');
  t.equal((await read(k, A, { authorization: `Bearer ${pat}`, cookie: 'sessionid=signed-8' })).status, 200, 'with a session cookie too');

  const forged = await new SignJWT({ uri: A }).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).setIssuer('test-issuer').setAudience('keyhole').setSubject('alice').setExpirationTime('5m').sign(PAT_SECRET);
  const asked = whoamiCalls();
  const bad = await read(k, A, { authorization: `Bearer ${forged}`, cookie: 'sessionid=signed-8' });
  t.equal(bad.status, 401, "a token claiming Keyhole's issuer that does not verify stays refused");
  t.equal(errorOf(bad.body), 'token_invalid');
  t.equal(whoamiCalls(), asked, 'the app was not asked');
  const viaQuery = await k.get(dataUrl(A, pat), { cookie: 'sessionid=signed-8' });
  t.equal(viaQuery.status, 401, 'a foreign JWT in ?token= does not fall back');
  const viaCookie = await read(k, A, { cookie: `__Host-keyhole=${pat}; sessionid=signed-8` });
  t.equal(viaCookie.status, 401, "nor one in Keyhole's cookie");
});

// Found by a review: the Cookie header went to whoami as the browser sent it, Keyhole's own
// session token with it (an app credential it is not: the app must never see it).
t.test("Keyhole's session cookie never reaches the app's whoami (introspection and logout)", async (t) => {
  const k = await startKeyhole(yaml());
  t.teardown(() => k.close());
  const keyholeToken = await k.token({ scope: ['local://other/'] });
  const pat = await new SignJWT({ token_type: 'access', user_id: 3 }).setProtectedHeader({ alg: 'HS256' }).setIssuer('label-studio').setSubject('3').setExpirationTime('5m').sign(PAT_SECRET);
  const lastWhoami = () => app.requests.filter((r) => r.url === '/api/current-user/whoami').at(-1)?.headers.cookie;
  t.equal((await read(k, A, { authorization: `Bearer ${pat}`, cookie: `__Host-keyhole=${keyholeToken}; sessionid=signed-9` })).status, 200, 'a foreign Bearer beside Keyhole\'s cookie: judged by the app');
  t.equal(lastWhoami(), 'sessionid=signed-9', 'whoami got the app cookie only');
  await k.get('/user/logout', { cookie: `sessionid=signed-10; __Host-keyhole=${keyholeToken}` });
  t.equal(lastWhoami(), 'sessionid=signed-10', 'the logout check sent the app cookie only');
  t.notOk(app.requests.some((r) => r.url === '/api/current-user/whoami' && String(r.headers.cookie).includes(keyholeToken)), 'no whoami ever carried the Keyhole token');
});

t.test('enabled: false is a real off switch (providers may be empty)', async (t) => {
  const k = await startKeyhole(yaml('    enabled: false\n').replace('    providers: [samples]\n', '    providers: []\n'));
  t.teardown(() => k.close());
  const before = whoamiCalls();
  const res = await read(k, A, { cookie: 'sessionid=signed-9' });
  t.equal(res.status, 401);
  t.equal(errorOf(res.body), 'token_missing');
  t.equal(whoamiCalls(), before, 'the app is never asked');
  const err = await startKeyhole(yaml().replace('    providers: [samples]\n', '    providers: []\n')).then(
    () => undefined,
    (e: unknown) => e as { problems?: { path: string; message: string }[] },
  );
  t.match(err?.problems, [{ path: 'auth.introspect.providers', message: /enabled: false/ }], 'enabled with no provider is refused, with the way out named');
});

t.test('two Keyholes sharing a TLS Redis: a logout through one holds on the other', async (t) => {
  const r = await startRedis();
  t.teardown(() => r.stop());
  const redisYaml = redisRevocationYaml(r);
  const k1 = await startKeyhole(yaml('', redisYaml));
  t.teardown(() => k1.close());
  const k2 = await startKeyhole(yaml('', redisYaml));
  t.teardown(() => k2.close());
  for (const k of [k1, k2]) await (k.server.current.revocation as RedisRevocationStore).whenConnected();
  const cookie = { cookie: 'sessionid=signed-90' };
  t.equal((await read(k2, A, cookie)).status, 200, 'k2 knows the session is not logged out (and caches that)');
  t.equal((await k1.get('/user/logout', cookie)).status, 302, 'logout through k1');
  // The answer is a pub/sub hop away on k2: ask until it lands (bounded), never a timing assertion.
  let res = await read(k2, A, cookie);
  for (let i = 0; i < 50 && res.status === 200; i++) {
    await new Promise((done) => setTimeout(done, 20));
    res = await read(k2, A, cookie);
  }
  t.equal(res.status, 401, 'k2 refuses the logged-out cookie');
  t.equal(errorOf(res.body), 'session_logged_out');

  const fresh = await startKeyhole(yaml('', redisYaml));
  t.teardown(() => fresh.close());
  await (fresh.server.current.revocation as RedisRevocationStore).whenConnected();
  t.equal(errorOf((await read(fresh, A, cookie)).body), 'session_logged_out', 'a replica started afterwards reads it from Redis');

  await r.kill();
  const down = await read(k2, A, { cookie: 'sessionid=signed-91' });
  t.equal(down.status, 503, 'Redis down: introspected sessions fail closed');
  t.equal(errorOf(down.body), 'revocation_unavailable');
});
