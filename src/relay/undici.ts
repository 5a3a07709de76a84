// The pieces of undici Keyhole runs on, loaded by their own paths. The package index also
// loads fetch, WebSocket, EventSource, the HTTP caches and the mock agent, about 16 MiB of
// resident memory in every process, for code Keyhole never runs; the rare features that do
// use it (a JWKS URL, when its key is loaded; auth.introspect) load it then.
// test/relay/undici.test.ts checks these are the very objects the index exports.
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const requireUndici = createRequire(import.meta.url);

export const Pool = requireUndici('undici/lib/dispatcher/pool.js') as typeof Undici.Pool;
export const errors = requireUndici('undici/lib/core/errors.js') as typeof Undici.errors;
export const buildConnector = requireUndici('undici/lib/core/connect.js') as typeof Undici.buildConnector;

/** The whole package, loaded once, when a feature needs more than the pieces above. */
export function fullUndici(): typeof Undici {
  return requireUndici('undici') as typeof Undici;
}
