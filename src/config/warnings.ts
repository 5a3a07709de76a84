// What a configuration allows but a careful operator should know: legal, and risky. Printed
// by `keyhole check-config` (exit status unchanged) and logged once when `serve` starts.
import { realpathSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve, sep } from 'node:path';
import { NEVER_FORWARDED } from '../app/schema.ts';
import type { Config } from './schema.ts';

export interface Warning {
  /** the config key it is about, e.g. server.publicUrl or providers[2].root */
  path: string;
  message: string;
}

/** Trusting X-Forwarded-* from a block this wide is trusting nearly anyone (10.0.0.0/8 is not flagged). */
const WIDEST_TRUSTED_BITS = { 4: 8, 6: 32 } as const;

export function configWarnings(cfg: Config): Warning[] {
  const warnings: Warning[] = [];
  const warn = (path: string, message: string) => warnings.push({ path, message });
  const server = cfg.server;

  if (!server.publicUrl) {
    warn(
      'server.publicUrl',
      "not set: the HTTP redirect and POST /v1/session's Origin check then accept only a Host the server certificate names (any other: 400 / 403; with insecurePlainHttp, every Origin outside cors.origins, same-origin too), the app gets the client's own Host, and start-up hints guess the URL; set it to the origin browsers use",
    );
  } else if (new URL(server.publicUrl).protocol === 'http:') {
    warn('server.publicUrl', 'is http: the redirect sends browsers to plain HTTP, and the Secure __Host- session cookie is never stored for an http origin; use the https origin browsers use');
  }
  if (server.insecurePlainHttp) warn('server.insecurePlainHttp', 'data routes are served WITHOUT TLS: only behind a mesh that terminates mTLS');

  localRootWarnings(cfg, warn);

  for (const origin of cfg.cors.origins) {
    const host = new URL(origin).hostname;
    if (origin.startsWith('http:') && host !== 'localhost' && !host.startsWith('127.') && host !== '[::1]') {
      warn('cors.origins', `${origin} is plain HTTP: anyone on its network path can run script there that reads data and plants sessions with the user's credentials`);
    }
  }
  if (cfg.auth.cookie.sameSite === 'None') warn('auth.cookie.sameSite', "None: every site's pages make the browser send the session cookie with data requests; Lax or Strict unless the data is embedded cross-site");

  const app = cfg.app;
  if (app) {
    app.trustedProxies.forEach((entry, i) => {
      const [ip, bits] = entry.split('/') as [string, string | undefined];
      const family = isIP(ip) === 6 ? 6 : 4;
      if (bits !== undefined && Number(bits) < WIDEST_TRUSTED_BITS[family]) {
        warn(`app.trustedProxies[${i}]`, `${entry} covers ${Number(bits) === 0 ? 'every address' : 'a huge address space'}: any peer in it may set the client address, scheme and host the app believes; list the proxies' own addresses`);
      }
    });
    if (app.tls?.insecureSkipVerify) warn('app.tls.insecureSkipVerify', "on: the app's certificate is NOT verified; anyone on the path can pose as the app");
    if (!app.cookies.httpOnly) warn('app.cookies.httpOnly', "false: the app's cookies (its session cookie too) are readable by any script on the page; list only the ones script needs in scriptReadable");
    const listed = [...app.defaultMethods, ...app.methods.flatMap((r) => r.allow)].filter((m) => NEVER_FORWARDED.has(m));
    if (listed.length > 0) warn('app.methods', `${[...new Set(listed)].join(', ')} listed, but never forwarded to the app`);
  }
  return warnings;
}

/**
 * Local roots that share files: one inside another, or the same tree twice, also through a
 * symlink. A file then has two URIs, and a token scoped to either prefix reaches it, whatever
 * the operator meant each provider to expose. Keyhole refuses the inner provider's files under
 * the outer prefix (403 local_link_refused) only where it can see the crossing.
 */
function localRootWarnings(cfg: Config, warn: (path: string, message: string) => void): void {
  const locals = cfg.providers.flatMap((p, i) => (p.kind === 'local' ? [{ i, name: p.name, root: withSep(realOrResolved(p.root)) }] : []));
  for (const a of locals) {
    const twin = locals.find((b) => b.i < a.i && b.root === a.root);
    if (twin) {
      warn(`providers[${a.i}].root`, `the same tree as providers[${twin.i}] (${twin.name})'s root: each file has two URIs, and a token for either prefix reaches it; give each provider its own tree`);
      continue;
    }
    // the nearest root holding this one (the first of equal ones)
    let outer: (typeof locals)[number] | undefined;
    for (const b of locals) if (b.root !== a.root && a.root.startsWith(b.root) && (!outer || b.root.length > outer.root.length)) outer = b;
    if (outer) warn(`providers[${a.i}].root`, `inside providers[${outer.i}] (${outer.name})'s root: its files are refused under ${outer.name}'s prefix (local_link_refused); give each provider its own tree`);
  }
}

/** The root with symlinks resolved (a link can nest two trees that look apart), or as written when it does not exist yet. */
function realOrResolved(root: string): string {
  try {
    return realpathSync.native(root);
  } catch {
    return resolve(root);
  }
}

const withSep = (dir: string) => (dir.endsWith(sep) ? dir : dir + sep);

export function formatWarning(w: Warning): string {
  return `warning: ${w.path}: ${w.message}`;
}
