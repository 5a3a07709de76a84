// Revocations in memory, for a group of processes. The primary's store remembers every
// revocation (so a new worker can be given all of them) and fans each one out to every
// worker; a logout through one worker goes up to the primary and out to all of them.
// With Redis none of this runs: every worker's own store hears revocations over pub/sub.
import { MemoryRevocationStore, RevocationUnavailable, type RevocationStore } from '../auth/revocation.ts';
import type { Logger } from '../observe/logger.ts';
import type { Answers, FromWorker, Relayed, RevocationSnapshot, ToWorker } from './ipc.ts';

/**
 * The primary's revocation store in memory mode: remembers every revocation and resolves
 * only once every live worker applied it, so "200 revoked" means no worker will serve that
 * token again.
 */
export class RelayedRevocationStore extends MemoryRevocationStore {
  private readonly relay: (m: Relayed) => Promise<void>;
  constructor(
    subjectTtlSeconds: number,
    relay: (m: Relayed) => Promise<void>,
  ) {
    super(subjectTtlSeconds);
    this.relay = relay;
  }

  override async revokeToken(jti: string, expiresAt: number): Promise<void> {
    await super.revokeToken(jti, expiresAt);
    // What the store keeps (never less than its horizon), not what the caller asked.
    await this.relay({ jti, until: this.tokens.get(jti)! });
  }

  override async revokeSubject(sub: string, at: number): Promise<void> {
    await super.revokeSubject(sub, at);
    await this.relay({ sub, at: this.subjects.get(sub)! });
  }

  override async revokeSession(hash: string, until: number): Promise<void> {
    this.holdSession(hash, until);
    await this.relay({ session: hash, until: this.sessions.get(hash)! });
  }

  snapshot(): RevocationSnapshot {
    this.sweep();
    return { tokens: [...this.tokens], subjects: [...this.subjects], sessions: [...this.sessions] };
  }
}

/** Primary: a revocation is done when every live worker applied it; otherwise it failed (503). */
export async function fanOut(r: Relayed, ask: (make: (seq: number) => ToWorker, timeoutMs: number) => Promise<Answers>, logger: Logger): Promise<void> {
  const { acks, missing } = await ask((seq) => ({ kh: 'revoke', seq, ...r }), 5_000);
  const failed = acks.filter((a) => a.ack.error);
  if (missing.length > 0 || failed.length > 0) {
    logger.error({ missing, failed: failed.map((a) => a.worker) }, 'revocation did not reach every worker');
    throw new RevocationUnavailable('revocation did not reach every worker');
  }
}

/** Worker: applies a revocation the primary relayed. */
export async function applyRelayed(store: RevocationStore, r: Relayed): Promise<void> {
  if ('jti' in r) await store.revokeToken(r.jti, r.until);
  else if ('session' in r) {
    // Held here only: sharing it again would loop through the primary.
    if (store instanceof MemoryRevocationStore) store.holdSession(r.session, r.until);
    else await store.revokeSession(r.session, r.until);
  } else await store.revokeSubject(r.sub, r.at);
}

/** Worker, memory mode: logouts through this worker, each held by every worker (through the primary) before the app hears of it. */
export class LogoutsThroughPrimary {
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();

  ask(hash: string, until: number): Promise<void> {
    const seq = ++this.seq;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(seq);
        reject(new RevocationUnavailable('the primary did not confirm the logout'));
      }, 10_000);
      this.waiting.set(seq, {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (err) => (clearTimeout(timer), reject(err)),
      });
      if (!process.connected || !process.send) {
        this.waiting.delete(seq);
        clearTimeout(timer);
        reject(new RevocationUnavailable('the primary is gone'));
        return;
      }
      process.send({ kh: 'logout', seq, hash, until } satisfies FromWorker);
    });
  }

  /** The primary's answer to one of them. */
  answered(m: Extract<ToWorker, { kh: 'logged-out' }>): void {
    const waiting = this.waiting.get(m.seq);
    this.waiting.delete(m.seq);
    if (m.error) waiting?.reject(new RevocationUnavailable(m.error));
    else waiting?.resolve();
  }
}

/**
 * Worker: the revocations made before it started, and (memory mode) its logouts shared
 * with the group from now on.
 */
export async function joinGroupRevocations(store: RevocationStore, start: RevocationSnapshot, logouts: LogoutsThroughPrimary): Promise<void> {
  for (const [jti, until] of start.tokens) await store.revokeToken(jti, until);
  for (const [sub, at] of start.subjects) await store.revokeSubject(sub, at);
  if (store instanceof MemoryRevocationStore) {
    for (const [hash, until] of start.sessions) store.holdSession(hash, until);
    // A logout through this worker holds on every worker before the app sees it.
    store.shareSession = (hash, until) => logouts.ask(hash, until);
  }
}
