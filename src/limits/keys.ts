// Names of the limit counters, in Redis and in the memory store alike:
//
//   <prefix>{limits}:<rule>:<who>:r                  rate (GCRA: the theoretical arrival time, ms)
//   <prefix>{limits}:<rule>:<who>:c                  concurrency slots (sorted set: holder → expiry)
//   <prefix>{limits}:<rule>:<who>:b:<window>:<start> bytes in one window (counter)
//   <prefix>{limits}:<rule>:<who>:o:<window>:<start> distinct objects in one window (set of URI hashes)
//   <prefix>{limits}:~refusals:<who>:<window>:<start> a subject's refusals (alerts)
//
// `<who>` is the rule's `per` values, each base64url-encoded (`s=…,o=…,p=…,v=…`; `all` for
// `per: []`): no value can forge a separator or a SCAN pattern. Every key carries the one hash
// tag `{limits}`, so a Lua call over many counters stays in one Redis Cluster slot.
import type { Dimension } from './schema.ts';

export type CounterKind = 'rate' | 'concurrent' | 'bytes' | 'objects' | 'refusals';

const TAG: Record<Dimension, string> = { sub: 's', org: 'o', project: 'p', provider: 'v' };
const DIM_OF: Record<string, Dimension> = { s: 'sub', o: 'org', p: 'project', v: 'provider' };
const KIND_TAG: Record<'rate' | 'concurrent' | 'bytes' | 'objects', string> = { rate: 'r', concurrent: 'c', bytes: 'b', objects: 'o' };

export const REFUSALS_RULE = '~refusals';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64url');

/** The values a counter is kept for, in DIMENSIONS order. */
export type Who = Partial<Record<Dimension, string>>;

/** `s=…,o=…`: the encoded `per` values of one counter. */
export function whoPart(per: readonly Dimension[], who: Who): string {
  if (per.length === 0) return 'all';
  let out = '';
  for (const d of per) out += (out ? ',' : '') + TAG[d] + '=' + b64(who[d] ?? '');
  return out;
}

/** `<prefix>{limits}:<rule>:<who>`: the stem of every counter of one rule for one key. */
export function stem(prefix: string, rule: string, who: string): string {
  return `${prefix}{limits}:${rule}:${who}`;
}

export function rateKey(s: string): string {
  return s + ':r';
}

export function slotKey(s: string): string {
  return s + ':c';
}

export function windowKey(s: string, kind: 'bytes' | 'objects', label: string, startMs: number): string {
  return `${s}:${KIND_TAG[kind]}:${label}:${Math.floor(startMs / 1000)}`;
}

export function refusalKey(prefix: string, sub: string, label: string, startMs: number): string {
  return `${stem(prefix, REFUSALS_RULE, whoPart(['sub'], { sub }))}:${label}:${Math.floor(startMs / 1000)}`;
}

/** Redis glob metacharacters in a key prefix (the rest of a pattern is ours). */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => '\\' + c);
}

/** A SCAN MATCH pattern for every counter whose `per` includes this subject (refusal counts too). */
export function subjectPattern(prefix: string, sub: string): string {
  return `${globEscape(prefix)}{limits}:*:s=${b64(sub)}[,:]*`;
}

export interface DecodedKey {
  rule: string;
  who: Who;
  kind: CounterKind;
  window?: string;
  /** window start, ms */
  start?: number;
}

/** A counter's name back into its parts; undefined for anything else. */
export function decodeKey(prefix: string, key: string): DecodedKey | undefined {
  const head = `${prefix}{limits}:`;
  if (!key.startsWith(head)) return undefined;
  const parts = key.slice(head.length).split(':');
  const [rule, whoText, ...rest] = parts;
  if (rule === undefined || whoText === undefined) return undefined;
  const who: Who = {};
  if (whoText !== 'all') {
    for (const pair of whoText.split(',')) {
      const dim = DIM_OF[pair.slice(0, 1)];
      if (dim === undefined || pair[1] !== '=') return undefined;
      who[dim] = Buffer.from(pair.slice(2), 'base64url').toString('utf8');
    }
  }
  if (rule === REFUSALS_RULE) {
    if (rest.length !== 2) return undefined;
    return { rule, who, kind: 'refusals', window: rest[0]!, start: Number(rest[1]) * 1000 };
  }
  const tag = rest[0];
  if (tag === 'r' && rest.length === 1) return { rule, who, kind: 'rate' };
  if (tag === 'c' && rest.length === 1) return { rule, who, kind: 'concurrent' };
  if ((tag === 'b' || tag === 'o') && rest.length === 3) return { rule, who, kind: tag === 'b' ? 'bytes' : 'objects', window: rest[1]!, start: Number(rest[2]) * 1000 };
  return undefined;
}
