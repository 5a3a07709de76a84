// The per-path verb allowlist (app.methods): the longest matching path prefix decides;
// paths no rule matches accept app.defaultMethods. TRACE and CONNECT never reach the app.
// Matching runs on a normalised path so that /api//x, /api/./x, /API/x, /api;p=1/x and
// %-encoded spellings cannot slip past a rule; the app receives the path with only its dot
// segments resolved. Methods are case-sensitive tokens (RFC 9110 §9.1): `get` is not GET.
import type { AppConfig } from './schema.js';

const NEVER = new Set(['TRACE', 'CONNECT', 'TRACK']);

export interface Target {
  /** dot segments resolved: forwarded to the app, with the original query */
  forwardPath: string;
  /** percent-decoded, path parameters stripped, lower-cased, repeated slashes merged: only for rule matching */
  matchPath: string;
}

/** `/a/./b/../c?x=1` → forward `/a/c?x=1`; undefined when the target cannot be parsed. */
export function normaliseTarget(target: string): Target | undefined {
  let url: URL;
  try {
    url = new URL(target, 'http://app.invalid');
  } catch {
    return undefined;
  }
  if (url.origin !== 'http://app.invalid') return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(url.pathname);
  } catch {
    return undefined;
  }
  // Rules match the most permissive reading any app router could make of the path: path
  // parameters (`/api;x=1/`, as servlet containers strip them) gone, case folded (routers
  // that ignore case), repeated slashes merged. An encoded slash or a dot segment that only
  // appears after that (`%2e%2e`, Tomcat's `..;/`) is a smuggled path.
  const matchPath = decoded
    .split('/')
    .map((segment) => {
      const params = segment.indexOf(';');
      return params === -1 ? segment : segment.slice(0, params);
    })
    .join('/')
    .replace(/\/{2,}/g, '/')
    .toLowerCase();
  if (/(^|\/)\.\.?(\/|$)/.test(matchPath) || matchPath.includes('\\') || matchPath.includes('\0')) return undefined;
  return { forwardPath: url.pathname + url.search, matchPath };
}

interface Rule {
  path: string;
  allow: ReadonlySet<string>;
}

export class MethodPolicy {
  private readonly rules: Rule[];
  private readonly fallback: ReadonlySet<string>;

  constructor(cfg: Pick<AppConfig, 'methods' | 'defaultMethods'>) {
    // Longest first: the first match is the most specific.
    this.rules = cfg.methods.map((r) => ({ path: r.path.toLowerCase(), allow: new Set(r.allow) })).sort((a, b) => b.path.length - a.path.length);
    this.fallback = new Set(cfg.defaultMethods);
  }

  allowedFor(matchPath: string): ReadonlySet<string> {
    for (const rule of this.rules) if (covers(rule.path, matchPath)) return rule.allow;
    return this.fallback;
  }

  allows(method: string, matchPath: string): boolean {
    return !NEVER.has(method) && this.allowedFor(matchPath).has(method);
  }
}

function covers(prefix: string, path: string): boolean {
  if (prefix.endsWith('/')) return path.startsWith(prefix) || path === prefix.slice(0, -1);
  return path === prefix || path.startsWith(`${prefix}/`);
}
