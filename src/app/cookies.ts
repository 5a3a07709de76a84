// Set-Cookie from the app, hardened on the way to the browser: Secure always, HttpOnly
// unless the cookie is listed as script-readable, SameSite as configured. A cookie named
// like Keyhole's own session cookie is dropped: the app must not overwrite it.
import type { AppConfig } from './schema.ts';

const CONTROLLED = new Set(['secure', 'httponly', 'samesite']);

export class CookieHardener {
  private readonly readable: ReadonlySet<string>;

  private readonly cfg: AppConfig['cookies'];
  private readonly reservedName: string;
  constructor(
    cfg: AppConfig['cookies'],
    reservedName: string,
  ) {
    this.cfg = cfg;
    this.reservedName = reservedName;
    this.readable = new Set(cfg.scriptReadable);
  }

  /** One Set-Cookie value → its hardened form, or undefined to drop it. */
  harden(setCookie: string): string | undefined {
    const parts = setCookie.split(';');
    const pair = parts[0]!;
    const eq = pair.indexOf('=');
    if (eq <= 0) return undefined;
    const name = pair.slice(0, eq).trim();
    if (name === '' || name === this.reservedName) return undefined;
    const kept = [pair.trim()];
    for (const attr of parts.slice(1)) {
      const key = attr.split('=')[0]!.trim().toLowerCase();
      if (key !== '' && !CONTROLLED.has(key)) kept.push(attr.trim());
    }
    kept.push('Secure');
    if (this.cfg.httpOnly && !this.readable.has(name)) kept.push('HttpOnly');
    kept.push(`SameSite=${this.cfg.sameSite}`);
    return kept.join('; ');
  }

  hardenAll(values: string | string[] | undefined): string[] {
    if (values === undefined) return [];
    const out: string[] = [];
    for (const v of Array.isArray(values) ? values : [values]) {
      const hardened = this.harden(v);
      if (hardened !== undefined) out.push(hardened);
    }
    return out;
  }
}
