// Counting what is in flight, so a reload can close the old runtime's pools at the
// moment its last request ends (not on a timer) and a drain knows when it is done.

/** Anything that says once when it is over: a ServerResponse emits 'close' exactly once. */
interface Closes {
  once(event: 'close', listener: () => void): unknown;
}

export class InFlight<K extends object> {
  private readonly counts = new Map<K, number>();
  private readonly waiters = new Map<K, (() => void)[]>();
  private readonly anyWaiters: (() => void)[] = [];
  private total = 0;

  /** Counts `what` against `key` until it closes. */
  enter(key: K, what: Closes): void {
    this.add(key);
    what.once('close', () => this.leave(key));
  }

  /** Counts one against `key`; the caller calls `leave(key)` exactly once when it is over. */
  add(key: K): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.total++;
  }

  count(key?: K): number {
    return key === undefined ? this.total : (this.counts.get(key) ?? 0);
  }

  /** Resolves once nothing counted against `key` is in flight (at once when nothing is). */
  idle(key: K): Promise<void> {
    if (this.count(key) === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.waiters.get(key) ?? [];
      list.push(resolve);
      this.waiters.set(key, list);
    });
  }

  /** Resolves once nothing at all is in flight. */
  allIdle(): Promise<void> {
    if (this.total === 0) return Promise.resolve();
    return new Promise((resolve) => this.anyWaiters.push(resolve));
  }

  leave(key: K): void {
    const n = (this.counts.get(key) ?? 1) - 1;
    this.total--;
    if (n > 0) {
      this.counts.set(key, n);
    } else {
      this.counts.delete(key);
      const list = this.waiters.get(key);
      this.waiters.delete(key);
      list?.forEach((resolve) => resolve());
    }
    if (this.total === 0) this.anyWaiters.splice(0).forEach((resolve) => resolve());
  }
}
