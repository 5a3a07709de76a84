// Stable signing times: properties that must hold for every clock reading and setting.
import t from 'tap';
import fc from 'fast-check';
import { amzDate, stableTimes } from '../../../src/providers/cloud/window.ts';

t.test('signAt never after now, every URL keeps minRemaining, same window → same signAt', async (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 4_000_000_000_000 }),
      fc.integer({ min: 2, max: 604_800 }),
      fc.integer({ min: 0, max: 86_400 }),
      fc.integer({ min: 1, max: 604_799 }),
      fc.integer({ min: 0, max: 86_400_000 }),
      (now, ttl, window, minRemaining, later) => {
        fc.pre(minRemaining < ttl);
        const a = stableTimes(now, ttl, window, minRemaining);
        if (a.signAt > now || a.signAt % 1000 !== 0) return false;
        if (a.expiresAt - a.signAt !== ttl * 1000) return false;
        if (a.expiresAt - now < minRemaining * 1000) return false;
        // A later clock reading in the same window signs identically.
        const b = stableTimes(now + later, ttl, window, minRemaining);
        const effective = Math.max(1, Math.min(window, ttl - minRemaining)) * 1000;
        if (Math.floor(now / effective) === Math.floor((now + later) / effective)) return b.signAt === a.signAt;
        return b.signAt > a.signAt;
      },
    ),
    { numRuns: 2000 },
  );
  t.pass('properties hold');
});

t.test('examples', async (t) => {
  const now = Date.parse('2026-01-01T00:01:59.999Z');
  t.same(stableTimes(now, 300, 60, 120), { signAt: Date.parse('2026-01-01T00:01:00Z'), expiresAt: Date.parse('2026-01-01T00:06:00Z') });
  // ttl 150, minRemaining 120: the window shrinks to 30 s so 120 s are always left.
  t.equal(stableTimes(now, 150, 60, 120).signAt, Date.parse('2026-01-01T00:01:30Z'));
  t.equal(amzDate(Date.parse('2013-05-24T00:00:00Z')), '20130524T000000Z');
});
