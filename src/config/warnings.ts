// What a configuration allows but a careful operator should know: legal, and risky. Printed
// by `keyhole check-config` (exit status unchanged) and logged once when `serve` starts.
import { resolve, sep } from 'node:path';
import type { Config } from './schema.js';

export interface Warning {
  path: string;
  message: string;
}

export function configWarnings(cfg: Config): Warning[] {
  const warnings: Warning[] = [];
  if (!cfg.server.publicUrl) {
    warnings.push({
      path: 'server.publicUrl',
      message:
        "not set: the HTTP redirect and POST /v1/session's Origin check then accept only a Host the server certificate names, and start-up hints guess the URL; set it to the origin browsers use",
    });
  }
  // A local root inside another: the inner provider's files are reachable below the outer
  // one's prefix too (Keyhole refuses them there, 403 local_link_refused, but the layout
  // says two things at once).
  const locals = cfg.providers.flatMap((p, i) => (p.kind === 'local' ? [{ i, name: p.name, root: withSep(resolve(p.root)) }] : []));
  for (const inner of locals) {
    for (const outer of locals) {
      if (inner !== outer && inner.root !== outer.root && inner.root.startsWith(outer.root)) {
        warnings.push({
          path: `providers[${inner.i}].root`,
          message: `inside providers[${outer.i}] (${outer.name})'s root: its files are refused under ${outer.name}'s prefix (local_link_refused); give each provider its own tree`,
        });
      }
    }
  }
  return warnings;
}

const withSep = (dir: string) => (dir.endsWith(sep) ? dir : dir + sep);

export function formatWarning(w: Warning): string {
  return `warning: ${w.path}: ${w.message}`;
}
