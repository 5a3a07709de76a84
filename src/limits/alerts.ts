// Alerts: thresholds below the limits, so someone looks before a subject is cut off — or
// while one drains data it may read, but should not read that much of (docs/limits.md).
//
// Each fires once per crossing, across every replica: a threshold is crossed by exactly one
// atomic update of the shared counter (the INCRBY or SADD whose total passes it), and only
// the replica that made that update emits the alert.
import type { Who } from './keys.ts';

export interface LimitAlert {
  /** unique, for deduplication downstream */
  id: string;
  /** quota: a bytes or objects counter passed a fraction of its limit; refusals: one subject refused N times in a window */
  alert: 'quota' | 'refusals';
  /** the rule whose counter crossed (`token` for a token's own limits; `-` for refusals) */
  rule: string;
  limit: 'bytes' | 'objects' | 'refusals';
  /** whose counter: the rule's `per` values (refusals: the subject) */
  who: Who;
  window: string;
  /** the window's start and end (ISO 8601) */
  windowStart: string;
  windowEnd: string;
  /** the fraction of the limit crossed (quota), or the refusal count (refusals) */
  threshold: number;
  /** the counter right after the crossing update */
  used: number;
  /** the limit (quota), or the refusal count that alerts (refusals) */
  max: number;
  at: string;
}

/** Where alerts go besides the webhook: the audit log and its Redis stream (the runtime connects it). */
export interface AlertSink {
  alert(event: LimitAlert): void;
}

/** Thresholds a counter passed in one update from `before` to `after` (of `max`). */
export function crossed(thresholds: readonly number[], max: number, before: number, after: number): number[] {
  const out: number[] = [];
  for (const f of thresholds) {
    const at = Math.ceil(f * max);
    if (before < at && after >= at) out.push(f);
  }
  return out;
}
