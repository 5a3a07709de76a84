// YAML for limits, quotas and alerts (the `limits:` section; docs/limits.md). Rules name what
// they count (`per`: each subject, org, project, provider, or a combination; `[]` counts every
// request together), whom they apply to (`when`; none: the default), and the limits: a request
// rate with a burst, concurrent downloads, bytes and distinct objects per window. A token's own
// `limits` claim has the same shape (parseTokenLimits) and can only tighten: it is one more rule.
import { z } from 'zod';
import { clientTls, duration, secret } from '../config/blocks.ts';

export const DIMENSIONS = ['sub', 'org', 'project', 'provider'] as const;
export type Dimension = (typeof DIMENSIONS)[number];

const UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };
const SIZE = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?$/i;

/** Bytes, as a number or like '10GiB', '500MB', '1.5TiB' (B, KB/MB/GB/TB: powers of 1000; KiB…TiB: of 1024). */
export function parseSize(v: number | string): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  const m = SIZE.exec(v.trim());
  if (!m) return undefined;
  const n = Math.floor(Number(m[1]) * UNITS[(m[2] ?? '').toLowerCase()]!);
  return Number.isSafeInteger(n) ? n : undefined;
}

const WINDOW = /^(\d+)(s|m|h|d)$/;
const WINDOW_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const MAX_WINDOW_MS = 31 * 86_400_000;

/** '1d' → ms, within 1 s … 31 d; undefined when it is not a window. */
export function parseWindow(label: string): number | undefined {
  const m = WINDOW.exec(label);
  if (!m) return undefined;
  const ms = Number(m[1]) * WINDOW_MS[m[2] as keyof typeof WINDOW_MS];
  return ms >= 1000 && ms <= MAX_WINDOW_MS ? ms : undefined;
}

/** One quota: at most `max` in each window of `ms`, the windows aligned on the epoch (UTC). */
export interface WindowLimit {
  /** as written: '1d', '1h' */
  label: string;
  ms: number;
  max: number;
}

/** Everything one rule (or one token) limits. */
export interface LimitSet {
  /** GCRA: one request every `periodMs` on average, `burst` at once */
  rate: { periodMs: number; burst: number; perSecond: number } | undefined;
  concurrent: number | undefined;
  bytes: readonly WindowLimit[];
  objects: readonly WindowLimit[];
}

const sizeValue = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n = parseSize(v);
  if (n === undefined) ctx.addIssue({ code: 'custom', message: "must be a number of bytes or like '10GiB', '500MB'" });
  return n ?? 0;
});
const countValue = z.number().int().min(1).max(1e12);

/** `{ 1d: 10GiB, 1h: 2GiB }` → the windows, shortest first. */
function windows<T extends z.ZodType<number, unknown>>(value: T) {
  return z.record(z.string(), value).transform((rec, ctx): WindowLimit[] => {
    const out: WindowLimit[] = [];
    for (const [label, max] of Object.entries(rec)) {
      const ms = parseWindow(label);
      if (ms === undefined) ctx.addIssue({ code: 'custom', message: `window ${JSON.stringify(label)} must be like 30s, 10m, 1h, 1d (1 s … 31 d)`, path: [label] });
      else out.push({ label, ms, max: max as number });
    }
    return out.sort((a, b) => a.ms - b.ms);
  });
}

const rateSchema = z.strictObject({
  perSecond: z.number().positive().max(1e6).describe('requests per second on average (0.5: one every 2 s)'),
  burst: z.number().int().min(1).max(1e7).optional().describe('requests allowed at once; default: perSecond rounded up'),
});

const limitFields = {
  rate: rateSchema.optional().describe('request rate with a burst (GCRA)'),
  concurrent: z.number().int().min(1).max(100_000).optional().describe('data requests in flight at once'),
  bytes: windows(sizeValue).optional().describe("body bytes sent per window, e.g. { 1d: 20GiB, 1h: 4GiB } (windows aligned on UTC: 1d is a UTC day)"),
  objects: windows(countValue).optional().describe('distinct objects (URIs) served per window, e.g. { 1d: 20000 }'),
};

type RawLimits = { rate?: { perSecond: number; burst?: number | undefined } | undefined; concurrent?: number | undefined; bytes?: WindowLimit[] | undefined; objects?: WindowLimit[] | undefined };

function toLimitSet(raw: RawLimits): LimitSet {
  const rate = raw.rate ? { perSecond: raw.rate.perSecond, periodMs: 1000 / raw.rate.perSecond, burst: raw.rate.burst ?? Math.max(1, Math.ceil(raw.rate.perSecond)) } : undefined;
  return { rate, concurrent: raw.concurrent, bytes: raw.bytes ?? [], objects: raw.objects ?? [] };
}

const limitsGiven = (r: RawLimits) => r.rate !== undefined || r.concurrent !== undefined || (r.bytes?.length ?? 0) > 0 || (r.objects?.length ?? 0) > 0;

const names = z.array(z.string().min(1)).min(1);

const ruleSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,39}$/, 'lower-case letters, digits, - and _, at most 40')
      .refine((n) => n !== 'token', '`token` is the name of the rule a token claim brings')
      .describe('names the rule in 429 answers, audit details, alerts and metrics'),
    per: z
      .array(z.enum(DIMENSIONS))
      .default(['sub'])
      .describe('what one counter counts: [sub] each subject apart (default), [org] each org as a whole, [org, provider] each org on each provider, [] every request together'),
    when: z
      .strictObject({ sub: names.optional(), org: names.optional(), project: names.optional(), provider: names.optional() })
      .optional()
      .describe('the requests this rule applies to (each listed claim or provider must be one of its values); none: every request — the default for its `per`'),
    ...limitFields,
  })
  .refine(limitsGiven, 'a rule must limit something: rate, concurrent, bytes or objects')
  .transform((r) => ({ name: r.name, per: DIMENSIONS.filter((d) => r.per.includes(d)), when: r.when, limits: toLimitSet(r) }));
export type LimitRule = z.infer<typeof ruleSchema>;

const webhookSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/ }).describe('where each alert is POSTed as JSON'),
  timeout: duration(2_000).describe('one POST must be answered within this; a dead or slow webhook never holds a data answer'),
  queue: z.number().int().min(1).max(100_000).default(1000).describe('alerts waiting to be sent; past this new alerts are dropped (counted) for the webhook, never for the audit log'),
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/), secret()).optional().describe('extra request headers, each a ${env:…} or ${file:…} reference (e.g. authorization)'),
  tls: clientTls().optional(),
});
export type WebhookConfig = z.infer<typeof webhookSchema>;

const alertsSchema = z
  .strictObject({
    quota: z
      .array(z.number().gt(0).max(1))
      .default([0.8])
      .describe('fractions of each bytes/objects quota: crossing one emits one alert per counter and window (1 alerts when the quota is reached)'),
    refusals: z
      .strictObject({
        count: z.number().int().min(1).max(1e9).describe('refusals (429) of one subject'),
        window: z.string().default('1m').describe('within one window of this length, e.g. 1m'),
      })
      .optional()
      .transform((r, ctx) => {
        if (r === undefined) return undefined;
        const ms = parseWindow(r.window);
        if (ms === undefined) ctx.addIssue({ code: 'custom', message: 'window must be like 1m, 10m, 1h', path: ['window'] });
        return { count: r.count, label: r.window, ms: ms ?? 60_000 };
      })
      .describe('one alert per subject and window when its refusals reach count'),
    webhook: webhookSchema.optional().describe('also POST every alert here (bounded queue, timeout)'),
  })
  .prefault({})
  .describe('thresholds below the limits: each crossing emits one alert (log, webhook)');
export type AlertsConfig = z.infer<typeof alertsSchema>;

const redisTuning = z
  .strictObject({
    share: z
      .number()
      .min(0)
      .max(1)
      .default(0.125)
      .describe('share of a rate burst one replica takes from Redis at a time and spends locally; 0: one request at a time (a Redis round trip per request)'),
    sync: duration(100).describe('how often a replica writes the bytes and objects it counted and reads everyone else\'s'),
    stale: duration(2_000).describe('how long a replica decides a quota far from its end from its own view before writing and reading it again (0: on every request); near the end it asks Redis on every request anyway'),
    linger: duration(1_000).describe('an unused concurrency slot or rate grant goes back to Redis after this'),
    slotTtl: duration(15_000).describe('a concurrency slot of a replica that died frees itself after this'),
  })
  .prefault({})
  .describe('how a replica decides locally and keeps in step with the store (tolerance across replicas: docs/limits.md)');
export type LimitsTuning = z.infer<typeof redisTuning>;

export const limitsSchema = z
  .strictObject({
    store: z.enum(['memory', 'redis']).default('memory').describe('memory: one process (workers: 1); redis: shared by every replica and worker (the top-level redis: section)'),
    onRedisError: z.enum(['deny', 'allow']).default('deny').describe('deny (default): while Redis cannot answer, limited requests get 503 limits_unavailable; allow: they are served unchecked'),
    midBody: z
      .enum(['finish', 'cut'])
      .default('finish')
      .describe('a download admitted under its byte quota that crosses it mid-body: finish (default; the next request is refused) or cut (the response is cut within one sync)'),
    redis: redisTuning,
    rules: z.array(ruleSchema).min(1, 'at least one rule').describe('read in order: per `per`, the first rule whose `when` matches applies; rules with different `per` all apply'),
    alerts: alertsSchema,
  })
  .superRefine((l, ctx) => {
    const seen = new Set<string>();
    const defaults = new Map<string, string>();
    l.rules.forEach((r, i) => {
      if (seen.has(r.name)) ctx.addIssue({ code: 'custom', message: `rule name ${r.name} is used twice`, path: ['rules', i, 'name'] });
      seen.add(r.name);
      // Per `per`, the first rule whose `when` matches applies: one after a default never would.
      const group = r.per.join(',');
      const before = defaults.get(group);
      if (before !== undefined) ctx.addIssue({ code: 'custom', message: `rule ${r.name} can never apply: rule ${before} before it has no \`when\` and counts the same per [${group}]; put the specific rules first`, path: ['rules', i] });
      if (r.when === undefined) defaults.set(group, r.name);
    });
  })
  .describe('limits, quotas and alerts per subject, org, project and provider (docs/limits.md)');
export type LimitsConfig = z.infer<typeof limitsSchema>;

/** What the whole-config check reads besides the `limits:` section. */
export interface LimitsContext {
  limits?: LimitsConfig | undefined;
  workers: number | 'auto';
  redis?: unknown;
  providers: readonly { name: string }[];
}

/**
 * Problems only the whole config shows (the config schema's superRefine calls this): a memory
 * store counts per process, so N workers would each allow the full limits.
 */
export function limitsProblems(c: LimitsContext): { path: (string | number)[]; message: string }[] {
  const l = c.limits;
  if (!l) return [];
  const out: { path: (string | number)[]; message: string }[] = [];
  if (l.store === 'redis' && !c.redis) out.push({ path: ['limits', 'store'], message: 'limits.store redis needs the top-level redis: section' });
  if (l.store === 'memory' && c.workers !== 1) {
    out.push({ path: ['limits', 'store'], message: `limits.store memory counts in one process: with workers: ${c.workers} each worker would allow the whole limits; use store: redis (or workers: 1)` });
  }
  const providers = new Set(c.providers.map((p) => p.name));
  l.rules.forEach((r, i) => {
    for (const name of r.when?.provider ?? []) if (!providers.has(name)) out.push({ path: ['limits', 'rules', i, 'when', 'provider'], message: `no provider is named ${name}` });
  });
  return out;
}

/** The `limits` claim of a token: the same fields as a rule's limits, numbers or strings. */
const tokenLimitsSchema = z.strictObject(limitFields).refine(limitsGiven, 'the limits claim limits nothing');

/** A token's `limits` claim → its limits, or a message saying why the claim is refused. */
export function parseTokenLimits(claim: unknown): LimitSet | string {
  const r = tokenLimitsSchema.safeParse(claim);
  if (!r.success) return `claim limits: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ')}`;
  return toLimitSet(r.data);
}
