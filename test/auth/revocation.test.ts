// Revocation outlives every token it kills, given that the issuer's clock may run up to
// clockTolerance ahead of ours: the policy (a subject's cut-off, how long a jti is kept), the
// in-memory store, and the cluster relay that hands a worker what the store keeps.
import t from 'tap';
import { acceptanceHorizon, MemoryRevocationStore, subjectCutoff, tokenRevokedUntil } from '../../src/auth/revocation.ts';
import type { SessionClaims } from '../../src/auth/claims.ts';
import { RelayedRevocationStore } from '../../src/process/revocation-fanout.ts';

const times = { maxTokenLifetime: 3_600_000, clockTolerance: 30 };
const NOW = 1_800_000_000;
const claims = (over: Partial<SessionClaims>): SessionClaims => ({ sub: 'bob', exp: NOW + 600, iat: NOW - 10, jti: undefined, org: undefined, project: undefined, scope: [], uri: undefined, ...over });

t.test('policy: the horizon covers an iat ahead by the tolerance and an exp honoured that late', async (t) => {
  t.equal(acceptanceHorizon(times), 3600 + 60);
  t.equal(subjectCutoff(NOW, times), NOW + 30, 'a subject revocation kills tokens issued up to the tolerance ahead');
  t.equal(tokenRevokedUntil(NOW, NOW + 5, times), NOW + 3660, "an early exp does not shorten it");
  t.equal(tokenRevokedUntil(NOW, NOW - 100, times), NOW + 3660, 'nor an exp in the past');
  t.equal(tokenRevokedUntil(NOW, undefined, times), NOW + 3660, 'no exp: the horizon');
  t.equal(tokenRevokedUntil(NOW, 'soon', times), NOW + 3660, 'not a number: the horizon');
  t.equal(tokenRevokedUntil(NOW, NOW + 7200, times), NOW + 7230, 'a later exp is honoured, with the tolerance');
  t.equal(tokenRevokedUntil(NOW, 1e300, times), NOW + 366 * 86_400, 'but not for ever');
});

t.test('memory store: a jti revocation is kept at least the horizon, and never shortened', async (t) => {
  const store = new MemoryRevocationStore(3630);
  t.teardown(() => store.close());
  const tok = claims({ jti: 'j1' });
  await store.revokeToken('j1', NOW + 5, NOW);
  store.sweep(NOW + 3600);
  t.equal(store.isRevoked(tok), true, 'still revoked long after the exp the caller gave');
  await store.revokeToken('j1', NOW + 1, NOW);
  store.sweep(NOW + 3629);
  t.equal(store.isRevoked(tok), true, 'a second, earlier expiry does not shorten the first');
  store.sweep(NOW + 3631);
  t.equal(store.isRevoked(tok), false, 'swept once past the horizon');
  await store.revokeToken('j2', NOW + 10_000, NOW);
  store.sweep(NOW + 9_999);
  t.equal(store.isRevoked(claims({ jti: 'j2' })), true, "a later expiry is kept");
});

t.test('memory store: a subject revocation at the cut-off kills a token minted on a clock ahead of ours', async (t) => {
  const store = new MemoryRevocationStore(3630);
  t.teardown(() => store.close());
  await store.revokeSubject('bob', subjectCutoff(NOW, times));
  t.equal(store.isRevoked(claims({ iat: NOW + 29 })), true, 'iat 29 s ahead of the revocation (within the tolerance): dead');
  t.equal(store.isRevoked(claims({ iat: NOW + 30 })), true);
  t.equal(store.isRevoked(claims({ iat: NOW + 31 })), false, 'issued past the cut-off: lives');
  t.equal(store.isRevoked(claims({ iat: undefined })), true, 'no iat: counts as issued before');
});

t.test('cluster relay: a worker is handed what the store keeps, not the expiry asked for', async (t) => {
  const relayed: unknown[] = [];
  const store = new RelayedRevocationStore(3630, async (r) => {
    relayed.push(r);
  });
  t.teardown(() => store.close());
  const before = Math.floor(Date.now() / 1000);
  await store.revokeToken('j1', before + 5);
  const { until } = relayed[0] as { until: number };
  t.ok(until >= before + 3630, `relayed until ${until - before}s from now, not 5 s`);
  t.same(store.snapshot().tokens, [['j1', until]], 'a new worker gets the same');
});
