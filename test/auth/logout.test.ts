// The pieces of auth.introspect.logout: which paths are logouts, what is kept of a session
// cookie (a hash of each value), and the memory store's logged-out sessions.
import t from 'tap';
import { createHash } from 'node:crypto';
import { sessionCookie } from '../../src/auth/introspect.ts';
import { MemoryRevocationStore } from '../../src/auth/revocation.ts';
import { isLogoutPath } from '../../src/app/logout.ts';
import { normaliseTarget } from '../../src/app/methods.ts';

const sha = (v: string) => createHash('sha256').update(v).digest('hex');

t.test('logout paths: any reading, case-folded, the prefix and below', async (t) => {
  const is = (path: string) => isLogoutPath(['/user/logout'], normaliseTarget(path)!.readings);
  for (const p of ['/user/logout', '/USER/LOGOUT', '/user/logout/', '/user/logout/x', '/user/./logout', '/user/%6cogout', '/user;x=1/logout', '/user//logout']) t.ok(is(p), p);
  for (const p of ['/user/logoutx', '/user', '/api/user/logout', '/']) t.notOk(is(p), p);
});

t.test('session cookie hashes: every value, quoted or not, never the value', async (t) => {
  const hashes = (cookie: string | undefined) => sessionCookie(cookie === undefined ? {} : { cookie }, 'sessionid').hashes;
  t.same(hashes('a=1; sessionid=abc; b=2'), [sha('abc')]);
  t.same(hashes('sessionid="abc"'), [sha('abc')], 'quotes are not part of the value');
  t.same(hashes('sessionid=a; x=1; sessionid=b'), [sha('a'), sha('b')], 'both duplicates');
  t.same(hashes('xsessionid=a; sessionid='), [], 'other names and empty values are not sessions');
  t.same(hashes(undefined), []);
  t.equal(sessionCookie({ cookie: Array.from({ length: 40 }, (_, i) => `sessionid=${i}`).join('; ') }, 'sessionid').values, 17, 'parsing stops one past the limit');
});

// Found by a red-team run: Python's cookie parser (Django's, the fixture app's) reads
// `"e\yJ…"` and `"…\075"` as the plain value, so a hash of the bytes as sent missed the mark.
t.test('a value read differently by some app is unreadable; percent-encoded values are read both ways', async (t) => {
  const read = (cookie: string) => sessionCookie({ cookie }, 'sessionid');
  for (const cookie of ['sessionid="a\\bc"', 'sessionid="ab\\075"', 'sessionid="a"b"', 'sessionid=a b', 'sessionid=ab\x85c', 'sessionid=ab\u00e9', 'sessionid=a\\bc']) {
    t.equal(read(cookie).unreadable, true, `${JSON.stringify(cookie)}: unreadable`);
  }
  t.equal(read('sessionid=ab\x85c; other=1').hashes.length, 0, 'nothing hashed for it');
  t.same(read('sessionid=abc\x85').hashes, [sha('abc')], 'whitespace Python strips around a value is stripped');
  t.same(read('sessionid\x85=abc').hashes, [sha('abc')], 'a name with whitespace Python strips is still the name');
  t.same(read('x=1, sessionid=abc').hashes, [sha('abc')], 'a comma separates pairs too (RFC 2965 parsers)');
  t.same(read('sessionid=s%3Aabc').hashes, [sha('s%3Aabc'), sha('s:abc')], 'as sent, and percent-decoded (Express, Rails)');
  t.same(read('sessionid=s%3aabc').hashes, [sha('s%3aabc'), sha('s:abc')], 'another spelling of the same value shares its decoded reading');
  t.same(read('sessionid=a+b%20c').hashes, [sha('a+b%20c'), sha('a+b c'), sha('a b c')], "'+' as a space too (PHP, Rails)");
  t.same(read('sessionid=a%zz').hashes, [sha('a%zz')], 'a value that does not decode is read as sent');
});

t.test('memory store: a logged-out session is kept until its second, the later mark wins, then swept', async (t) => {
  const store = new MemoryRevocationStore(60);
  t.teardown(() => store.close());
  const now = Math.floor(Date.now() / 1000);
  await store.revokeSession('h1', now + 100);
  await store.revokeSession('h1', now + 10);
  t.equal(store.isSessionRevoked('h1'), true);
  t.equal(store.isSessionRevoked('h2'), false);
  t.equal(store.isSessionRevoked('h1', now + 99), true, 'an earlier mark does not shorten a later one');
  t.equal(store.isSessionRevoked('h1', now + 101), false, 'past its second it no longer holds');
  store.sweep(now + 101);
  t.equal(store.isSessionRevoked('h1', now), false, 'and the sweep forgets it');
  const shared: [string, number][] = [];
  store.shareSession = async (hash, until) => void shared.push([hash, until]);
  await store.revokeSession('h3', now + 50);
  t.same(shared, [['h3', now + 50]], 'a cluster worker shares its logouts');
});
