// auth.introspect.logout: the app's logout, seen through Keyhole's own front, ends the
// session's data access too. An app whose sessions are signed cookies (Label Studio, Django's
// signed_cookies backend) cannot forget a cookie it issued: after its logout the old value
// still passes whoami until it expires. So before the logout request reaches the app, the
// SHA-256 of its session cookie is marked logged out in the revocation store (shared by the
// replicas), and the data route refuses that cookie from then on without asking the app.
import type { IncomingHttpHeaders } from 'node:http';
import { sessionCookie, type Introspector, type LogoutConfig } from '../auth/introspect.ts';
import type { RevocationStore } from '../auth/revocation.ts';
import { covers, fold, type Target } from './methods.ts';

/**
 * Called for every request the app front forwards: undefined when it is not a logout (the
 * common case costs no promise), else a promise that settles once the logout is recorded.
 * It rejects when the store cannot record it: the logout is then refused, not forwarded.
 */
export type LogoutHook = (target: Pick<Target, 'readings'>, headers: IncomingHttpHeaders) => Promise<void> | undefined;

/**
 * Logout paths match any reading of the path, case-folded: the opposite of a method rule's
 * "every reading". A false match only logs the sender's own cookie out; a miss would leave
 * a logged-out cookie readable.
 */
export function isLogoutPath(paths: readonly string[], readings: readonly string[]): boolean {
  for (const r of readings) {
    const folded = fold(r);
    for (const p of paths) if (covers(fold(p), folded)) return true;
  }
  return false;
}

/** `introspector`: the runtime's, present when auth.introspect is enabled. */
export function logoutHook(introspector: Introspector | undefined, logout: LogoutConfig | undefined, store: RevocationStore): LogoutHook | undefined {
  if (!introspector || !logout) return undefined;
  return (target, headers) => {
    if (!isLogoutPath(logout.paths, target.readings)) return undefined;
    // An unreadable value is refused by the data route whatever its mark: none is needed.
    const hashes = sessionCookie(headers, logout.sessionCookie).hashes;
    if (hashes.length === 0) return undefined;
    return markLoggedOut(introspector, logout, store, headers, hashes);
  };
}

async function markLoggedOut(introspector: Introspector, logout: LogoutConfig, store: RevocationStore, headers: IncomingHttpHeaders, hashes: string[]): Promise<void> {
  // Bounded by sessions the app knows: anyone may post junk cookies to the logout path, and
  // each mark is kept for the session lifetime. Cookies the app refuses (they grant nothing)
  // need no mark; the app being down is no reason to skip one. Every reading not yet marked
  // is marked: one value already marked (planted beside the live one) must not spare the rest.
  const unmarked: string[] = [];
  for (const hash of hashes) if (!(await store.isSessionRevoked(hash))) unmarked.push(hash);
  if (unmarked.length === 0) return;
  const answer = await introspector.check(headers);
  if (!answer.ok && answer.reason === 'introspect_denied') return;
  const until = Math.ceil((Date.now() + logout.remember) / 1000);
  for (const hash of unmarked) await store.revokeSession(hash, until);
  introspector.forget(headers);
}
