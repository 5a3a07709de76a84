// Exactly one audit event per answered request: each answer carries its request id, and its
// event is written when the exchange closes.
import type { Test } from 'tap';
import type { RawAnswer } from './client.ts';

export type AuditSource = () => readonly Record<string, unknown>[];

/** Waits for the answer's audit event, then asserts it is the only one; returns it. */
export async function oneAudit(t: Test, audits: AuditSource, answer: RawAnswer, what: string): Promise<Record<string, unknown> | undefined> {
  const id = answer.headers['x-request-id'];
  if (!t.ok(id, `${what}: the answer names its request id`)) return undefined;
  const until = Date.now() + 10_000;
  while (Date.now() < until && !audits().some((a) => a.id === id)) await new Promise((r) => setTimeout(r, 10));
  // A second event would come from the same close: give it a moment to show.
  await new Promise((r) => setTimeout(r, 50));
  const events = audits().filter((a) => a.id === id);
  t.equal(events.length, 1, `${what}: exactly one audit event`);
  return events[0];
}
