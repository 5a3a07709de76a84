// A call to an identity service that may never answer (a stalled connection, a client
// library whose own timeout does not hold): it fails after `ms`, so no request waits on it.

/** `p`, or a rejection naming `what` once `ms` have passed. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms).unref();
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
