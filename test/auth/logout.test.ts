// The pieces of auth.introspect.logout: which paths are logouts, what is kept of a session
// cookie (a hash of each value), and the memory store's logged-out sessions.
import t from 'tap';
import { createHash } from 'node:crypto';
import { sessionCookieHashes } from '../../src/auth/introspect.js';
import { MemoryRevocationStore } from '../../src/auth/revocation.js';
import { isLogoutPath } from '../../src/app/logout.js';
import { normaliseTarget } from '../../src/app/methods.js';

const sha = (v: string) => createHash('sha256').update(v).digest('hex');

t.test('logout paths: any reading, case-folded, the prefix and below', async (t) => {
  const is = (path: string) => isLogoutPath(['/user/logout'], normaliseTarget(path)!.readings);
  for (const p of ['/user/logout', '/USER/LOGOUT', '/user/logout/', '/user/logout/x', '/user/./logout', '/user/%6cogout', '/user;x=1/logout', '/user//logout']) t.ok(is(p), p);
  for (const p of ['/user/logoutx', '/user', '/api/user/logout', '/']) t.notOk(is(p), p);
});

t.test('session cookie hashes: every value, quoted or not, never the value', async (t) => {
  t.same(sessionCookieHashes({ cookie: 'a=1; sessionid=abc; b=2' }, 'sessionid'), [sha('abc')]);
  t.same(sessionCookieHashes({ cookie: 'sessionid="abc"' }, 'sessionid'), [sha('abc')], 'quotes are not part of the value');
  t.same(sessionCookieHashes({ cookie: 'sessionid=a; x=1; sessionid=b' }, 'sessionid'), [sha('a'), sha('b')], 'both duplicates');
  t.same(sessionCookieHashes({ cookie: 'xsessionid=a; sessionid=' }, 'sessionid'), [], 'other names and empty values are not sessions');
  t.same(sessionCookieHashes({}, 'sessionid'), []);
  t.equal(sessionCookieHashes({ cookie: Array.from({ length: 40 }, (_, i) => `sessionid=${i}`).join('; ') }, 'sessionid').length, 17, 'parsing stops one past the limit');
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
