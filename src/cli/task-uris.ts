// Rewrites the storage URIs in a Label Studio task export into Keyhole data URLs, and back.
// Only task data is touched (annotations, predictions and the export's own fields never),
// and only a URI the data route would route to a configured provider: anything else stays
// as it is, and a URI-looking value left alone is reported.
//
// The URL carries the URI exactly as the task wrote it (percent-encoded as one query
// value), not its canonical form: Keyhole canonicalises it when serving (the same object,
// the same scope check), and the way back gives the task's own bytes again, so a key with
// a space or an accent still reads the way Label Studio's storage reads it.
import { redactUrl } from '../observe/logger.ts';
import { ProviderRegistry } from '../providers/registry.ts';
import type { Provider } from '../providers/types.ts';
import { ownsUri, parseDataUri, UriError } from '../uri.ts';
import type { ProviderPrefix } from './config-part.ts';
import { DATA_PATH } from '../server/routes.ts';

export type Direction = 'keyhole' | 'storage';
export type ExportFormat = 'json' | 'json-min';

export interface RewriteOptions {
  to: Direction;
  /** '' for relative URLs (app and Keyhole on one origin), else an origin with an optional path, no trailing '/' */
  base: string;
  registry: ProviderRegistry;
  maxUriLength: number;
  /** only these top-level task data keys; undefined: every key */
  keys?: ReadonlySet<string>;
  /** how many values left alone to describe (the rest are counted) */
  examples?: number;
}

export interface LeftAlone {
  /** e.g. `task 17 data.image` */
  where: string;
  /** the value, any query string cut (it may hold a signature or a token) */
  value: string;
  why: string;
}

export interface RewriteReport {
  format: ExportFormat;
  tasks: number;
  rewritten: number;
  leftAlone: number;
  examples: LeftAlone[];
}

export class ExportError extends Error {}

/** The export's own fields in JSON-min, beside the task data keys (label-studio-converter `convert_to_json_min`). */
const JSON_MIN_OWN_KEYS: ReadonlySet<string> = new Set(['id', 'annotator', 'annotation_id', 'created_at', 'updated_at', 'lead_time', 'agreement']);

const URI_LIKE = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//;
/** The data route with its query's start: what a rewritten task value holds. */
const DATA_QUERY = `${DATA_PATH}?`;

/**
 * The registry routes by prefix and kind alone: providers built from those, never asked to
 * serve, let `tasks` route exactly as the data route does without reading a secret.
 */
export function routingRegistry(providers: readonly ProviderPrefix[]): ProviderRegistry {
  return new ProviderRegistry(
    providers.map(
      (p): Provider => ({
        name: p.name,
        kind: p.kind,
        match: p.match,
        orgs: undefined,
        projects: undefined,
        serve() {
          throw new Error(`provider ${p.name} was loaded for routing only`);
        },
        close: async () => {},
      }),
    ),
  );
}

/**
 * JSON: every task is an object whose `data` is an object (annotations beside it);
 * JSON-min: flat objects, the task data keys at the top level. A bare object is one task.
 */
export function detectFormat(tasks: readonly unknown[]): ExportFormat {
  const wrapped = tasks.filter((t) => isRecord(t) && isRecord(t.data)).length;
  if (wrapped === tasks.length) return 'json';
  if (wrapped === 0) return 'json-min';
  throw new ExportError(`${wrapped} of ${tasks.length} tasks have a "data" object and the others not: say which with --format json or --format json-min`);
}

/** Rewrites `doc` (the parsed export) in place and says what it did. */
export function rewriteExport(doc: unknown, format: ExportFormat | 'auto', opts: RewriteOptions): RewriteReport {
  const tasks: unknown[] = Array.isArray(doc) ? doc : isRecord(doc) ? [doc] : [];
  if (!Array.isArray(doc) && !isRecord(doc)) throw new ExportError('expected a Label Studio export: a JSON array of tasks');
  const actual = format === 'auto' ? detectFormat(tasks) : format;
  const rewriter = new Rewriter(opts);
  tasks.forEach((task, i) => {
    if (!isRecord(task)) throw new ExportError(`task ${i + 1} is not a JSON object`);
    const name = typeof task.id === 'number' || typeof task.id === 'string' ? `task ${task.id}` : `task #${i + 1}`;
    if (actual === 'json') {
      if (!isRecord(task.data)) throw new ExportError(`${name} has no "data" object (a JSON-min export? use --format json-min)`);
      rewriter.fields(task.data, `${name} data.`, () => true);
    } else {
      rewriter.fields(task, `${name} `, (key) => !JSON_MIN_OWN_KEYS.has(key));
    }
  });
  return { format: actual, tasks: tasks.length, rewritten: rewriter.rewritten, leftAlone: rewriter.leftAlone, examples: rewriter.examples };
}

class Rewriter {
  rewritten = 0;
  leftAlone = 0;
  readonly examples: LeftAlone[] = [];
  private readonly limit: number;

  private readonly opts: RewriteOptions;
  constructor(opts: RewriteOptions) {
    this.opts = opts;
    this.limit = opts.examples ?? 5;
  }

  /** The top-level keys of one task's data (those `--key` names, and `include` admits). */
  fields(data: Record<string, unknown>, where: string, include: (key: string) => boolean): void {
    // `where` ends in its separator: 'task 7 data.' (JSON), 'task 7 ' (JSON-min).
    for (const key of Object.keys(data)) {
      if (!include(key) || (this.opts.keys && !this.opts.keys.has(key))) continue;
      data[key] = this.value(data[key], `${where}${key}`);
    }
  }

  /** Label Studio allows nested objects and lists in task data: every string in them. */
  private value(v: unknown, where: string): unknown {
    if (typeof v === 'string') return this.string(v, where);
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) v[i] = this.value(v[i], `${where}[${i}]`);
      return v;
    }
    if (isRecord(v)) {
      for (const key of Object.keys(v)) v[key] = this.value(v[key], `${where}.${key}`);
      return v;
    }
    return v;
  }

  private string(s: string, where: string): string {
    const result = this.opts.to === 'keyhole' ? this.toKeyhole(s) : this.toStorage(s);
    if (result === undefined) return s;
    if ('why' in result) {
      this.leftAlone++;
      if (this.examples.length < this.limit) this.examples.push({ where, value: cutQuery(s), why: result.why });
      return s;
    }
    this.rewritten++;
    return result.value;
  }

  /** undefined: not a URI at all (text, a number, an upload path), said nothing about. */
  private toKeyhole(s: string): { value: string } | { why: string } | undefined {
    if (!URI_LIKE.test(s)) return undefined;
    // Already a Keyhole URL on this base (a second run): nothing to say.
    if (this.opts.base !== '' && s.startsWith(this.opts.base + DATA_QUERY)) return undefined;
    const why = this.unroutable(s);
    if (why !== undefined) return { why };
    return { value: `${this.opts.base}${DATA_QUERY}uri=${encodeURIComponent(s)}` };
  }

  private toStorage(s: string): { value: string } | { why: string } | undefined {
    const at = s.indexOf(DATA_QUERY);
    if (at === -1) return undefined;
    // Relative (app and Keyhole on one origin) or on --base: anything else is some other site's.
    const prefix = s.slice(0, at);
    if (prefix !== '' && prefix !== this.opts.base) {
      if (!URI_LIKE.test(prefix)) return undefined;
      return { why: this.opts.base === '' ? 'an absolute URL: give its origin as --base' : `not under --base ${this.opts.base}` };
    }
    const query = s.slice(at + DATA_QUERY.length);
    if (!/^uri=[^&#]*$/.test(query)) return { why: 'the URL carries more than ?uri=' };
    let uri: string;
    try {
      // As the data route reads a query value: '+' is a space.
      uri = decodeURIComponent(query.slice(4).replaceAll('+', ' '));
    } catch {
      return { why: 'malformed percent-encoding' };
    }
    const why = this.unroutable(uri);
    return why === undefined ? { value: uri } : { why };
  }

  /** Why the data route would not serve `raw` from a provider, or undefined when it would. */
  private unroutable(raw: string): string | undefined {
    try {
      const uri = parseDataUri(raw, this.opts.maxUriLength);
      if (this.opts.registry.resolve(uri) === undefined) return 'no provider matches';
      return undefined;
    } catch (err) {
      // A web page's URL with a query is refused for its query: say first that no provider has it.
      if (err instanceof UriError && err.reason === 'uri_query' && !this.owned(raw.slice(0, raw.search(/[?#]/)))) return 'no provider matches';
      if (err instanceof UriError) return err.message;
      // encodeURIComponent refuses a lone surrogate, which JSON strings may hold.
      if (err instanceof URIError) return 'not well-formed Unicode';
      throw err;
    }
  }

  /** Some provider's prefix covers `raw` (which may name a folder). */
  private owned(raw: string): boolean {
    try {
      const canonical = parseDataUri(raw, this.opts.maxUriLength).canonical;
      return this.opts.registry.providers.some((p) => ownsUri(p.match, canonical));
    } catch {
      return false;
    }
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** A query string may hold a presigned signature or a token, the rest user:password@ or a JWT: never printed. */
function cutQuery(s: string): string {
  const q = s.indexOf('?');
  return redactUrl(q === -1 ? s : `${s.slice(0, q)}?…`);
}
