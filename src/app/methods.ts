// The per-path verb allowlist (app.methods): the longest matching path prefix decides;
// paths no rule matches accept app.defaultMethods. TRACE and CONNECT never reach the app.
// Routers read one path differently (raw or percent-decoded, `;params` kept or stripped,
// `//` kept or merged, case kept or folded), so a method passes only when every reading
// allows it: a spelling can neither slip past a rule nor move into a laxer, longer one
// (`/admin/OK/` is /admin/ok/ to one app and /admin/<name>/ to Django). The app receives the
// path with only its dot segments resolved. Methods are case-sensitive tokens (RFC 9110
// §9.1): `get` is not GET.
import { NEVER_FORWARDED, type AppConfig } from './schema.ts';


export interface Target {
  /** dot segments resolved: forwarded to the app, with the original query */
  forwardPath: string;
  /** the path as each kind of router could read it, case kept, deduplicated; one for a plain path */
  readings: readonly string[];
  /** `?_method=` values (upper-cased): the method Laravel/Symfony and Express method-override run instead */
  overrides: readonly string[];
}

/** Anything that lets two routers read the path differently, but case. */
const AMBIGUOUS = /[%;]|\/\//;
const NO_OVERRIDES: readonly string[] = [];

/** `/a/./b/../c?x=1` → forward `/a/c?x=1`; undefined when the target cannot be parsed or smuggles a dot segment. */
export function normaliseTarget(target: string): Target | undefined {
  let url: URL;
  try {
    url = new URL(target, 'http://app.invalid');
  } catch {
    return undefined;
  }
  if (url.origin !== 'http://app.invalid') return undefined;
  const path = url.pathname;
  const overrides = url.search.length > 1 ? methodOverrides(url.searchParams) : NO_OVERRIDES;
  // URL has resolved dot segments, turned `\` into `/` and encoded NUL: a plain path needs nothing more.
  if (!AMBIGUOUS.test(path)) return { forwardPath: path + url.search, readings: [path], overrides };
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return undefined;
  }
  const readings = new Set<string>();
  for (const base of [path, decoded]) {
    // path parameters: kept (Django, Rails) or stripped (servlet containers); `//`: kept or merged
    for (const p of [base, withoutParams(base)]) {
      readings.add(p);
      readings.add(p.replace(/\/{2,}/g, '/'));
    }
  }
  // An encoded slash or a dot segment that only appears in some reading (`%2e%2e`, Tomcat's `..;/`) is a smuggled path.
  for (const r of readings) if (/(^|\/)\.\.?(\/|$)/.test(r) || r.includes('\\') || r.includes('\0')) return undefined;
  return { forwardPath: path + url.search, readings: [...readings], overrides };
}

/**
 * The `_method` values of a query, under every name a framework reads as `_method`: percent-
 * decoded (`_%6Dethod`: URLSearchParams, qs, PHP) and PHP's renaming of `.`, ` ` and `[` to `_`
 * (`.method`, `[method`: Laravel and Symfony read PHP's variables).
 */
function methodOverrides(params: URLSearchParams): readonly string[] {
  let found: string[] | undefined;
  for (const [name, value] of params) {
    if (name.replace(/^ +/, '').replace(/[. []/g, '_') !== '_method') continue;
    (found ??= []).push(value.trim().toUpperCase());
  }
  return found ?? NO_OVERRIDES;
}

function withoutParams(path: string): string {
  if (!path.includes(';')) return path;
  return path
    .split('/')
    .map((segment) => {
      const params = segment.indexOf(';');
      return params === -1 ? segment : segment.slice(0, params);
    })
    .join('/');
}

const NON_ASCII = /[^\0-\x7f]/;

/**
 * Case folded the way the loosest case-insensitive router compares: ASCII lower case; past
 * ASCII also NFKC (fullwidth letters), Java's equalsIgnoreCase / .NET's OrdinalIgnoreCase
 * (ſ is s, K is k, İ is i).
 */
export function fold(path: string): string {
  const lower = path.toLowerCase();
  if (!NON_ASCII.test(lower)) return lower;
  return lower.normalize('NFKC').toUpperCase().toLowerCase().replace(/\u0307/g, '');
}

interface Rule {
  path: string;
  allow: ReadonlySet<string>;
}

export class MethodPolicy {
  /** as written, longest first: the first match is the most specific */
  private readonly rules: Rule[];
  /** the same rules case-folded, for the folded reading of a path */
  private readonly folded: Rule[];
  private readonly fallback: ReadonlySet<string>;
  /** no rule changes when folded: a path that folding leaves alone needs one look */
  private readonly caseless: boolean;

  constructor(cfg: Pick<AppConfig, 'methods' | 'defaultMethods'>) {
    const byLength = (a: Rule, b: Rule) => b.path.length - a.path.length;
    this.rules = cfg.methods.map((r) => ({ path: r.path, allow: new Set(r.allow) })).sort(byLength);
    this.folded = cfg.methods.map((r) => ({ path: fold(r.path), allow: new Set(r.allow) })).sort(byLength);
    this.caseless = cfg.methods.every((r) => fold(r.path) === r.path);
    this.fallback = new Set(cfg.defaultMethods);
  }

  private ruleFor(rules: Rule[], path: string): ReadonlySet<string> {
    for (const rule of rules) if (covers(rule.path, path)) return rule.allow;
    return this.fallback;
  }

  /** Whether `method` (and every `?_method=` override) is allowed under every reading of the path. */
  allows(method: string, target: Pick<Target, 'readings' | 'overrides'>): boolean {
    if (!this.permits(method, target.readings)) return false;
    for (const m of target.overrides) if (!this.permits(m, target.readings)) return false;
    return true;
  }

  private permits(method: string, readings: readonly string[]): boolean {
    if (NEVER_FORWARDED.has(method)) return false;
    for (const r of readings) {
      if (!this.ruleFor(this.rules, r).has(method)) return false;
      const folded = fold(r);
      if ((folded !== r || !this.caseless) && !this.ruleFor(this.folded, folded).has(method)) return false;
    }
    return true;
  }

  /** The methods allowed under every reading (the Allow header of a 405). */
  allowedFor(readings: readonly string[]): string[] {
    const sets = readings.flatMap((r) => [this.ruleFor(this.rules, r), this.ruleFor(this.folded, fold(r))]);
    return [...sets[0]!].filter((m) => !NEVER_FORWARDED.has(m) && sets.every((s) => s.has(m)));
  }
}

/** Whether a rule path covers `path`: itself, or a path below it ("/api/" covers /api too). */
export function covers(prefix: string, path: string): boolean {
  if (prefix.endsWith('/')) return path.startsWith(prefix) || path === prefix.slice(0, -1);
  return path === prefix || path.startsWith(`${prefix}/`);
}
