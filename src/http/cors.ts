// CORS for the data and session routes: an exact-origin allowlist, credentials only for
// listed origins, and the response headers media players need to read.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setFields } from './data-head.ts';

const EXPOSED = 'Content-Length, Content-Range, Accept-Ranges, Content-Type, ETag, Last-Modified, X-Request-Id';

export class Cors {
  private readonly origins: ReadonlySet<string>;

  private readonly maxAge: number;
  constructor(
    origins: readonly string[],
    maxAge: number,
  ) {
    this.maxAge = maxAge;
    this.origins = new Set(origins);
  }

  allowed(origin: string | undefined): origin is string {
    return origin !== undefined && this.origins.has(origin);
  }

  /**
   * The CORS header fields for an answer to `origin`, appended to `into` (flat [name, value, …]).
   * Without listed origins no answer depends on Origin, so none says Vary: Origin either.
   */
  fields(origin: string | undefined, into: string[]): string[] {
    if (this.origins.size === 0) return into;
    into.push('vary', 'Origin');
    if (this.allowed(origin)) into.push('access-control-allow-origin', origin, 'access-control-allow-credentials', 'true', 'access-control-expose-headers', EXPOSED);
    return into;
  }

  /** Sets the CORS response headers of `fields` on `res` (routes that answer through setHeader). */
  decorate(req: IncomingMessage, res: ServerResponse): void {
    setFields(res, this.fields(req.headers.origin, []));
  }

  /** Answers a preflight; false when the origin is not listed (the caller refuses). */
  preflight(req: IncomingMessage, res: ServerResponse, methods: string): boolean {
    const origin = req.headers.origin;
    if (!this.allowed(origin)) return false;
    res.statusCode = 204;
    res.setHeader('vary', 'Origin');
    res.setHeader('access-control-allow-origin', origin);
    res.setHeader('access-control-allow-credentials', 'true');
    res.setHeader('access-control-allow-methods', methods);
    res.setHeader('access-control-allow-headers', 'Authorization, Range, If-Range, If-None-Match, If-Modified-Since, Content-Type');
    res.setHeader('access-control-max-age', String(this.maxAge));
    res.end();
    return true;
  }
}
