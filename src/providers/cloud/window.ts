// Stable URLs: the signing time is rounded down to a window, so one URI asked twice in a
// window signs to the same URL and the browser cache hits. The window shrinks when the
// TTL is short, so every URL handed out still has at least `minRemaining` seconds left.

export interface StableTimes {
  /** signing time, whole seconds (ms epoch) */
  signAt: number;
  /** signAt + ttl (ms epoch) */
  expiresAt: number;
}

/**
 * @param nowMs current time
 * @param ttlSeconds lifetime signed into the URL
 * @param windowSeconds rounding window (0: none, whole seconds)
 * @param minRemainingSeconds least lifetime left when the URL is handed out
 */
export function stableTimes(nowMs: number, ttlSeconds: number, windowSeconds: number, minRemainingSeconds: number): StableTimes {
  const window = Math.max(1, Math.min(windowSeconds, ttlSeconds - minRemainingSeconds)) * 1000;
  const signAt = Math.floor(nowMs / window) * window;
  return { signAt, expiresAt: signAt + ttlSeconds * 1000 };
}

/** 20130524T000000Z */
export function amzDate(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}
