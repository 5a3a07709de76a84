// The upstream answers that close right after their body, the ones that crashed undici 7 when
// Keyhole had paused its read for a slow client (#5360): HTTP/1.0 (Python's http.server),
// `Connection: close` (gunicorn's sync worker, as Label Studio runs), a body framed by the
// close (a CGI script under Python's http.server) and a FIN right after a Content-Length body
// with no `Connection: close` (raw: no packaged server does it on demand).
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { startGunicorn, startPythonHttpServer } from '../../helpers/real-servers.ts';
import { cgiFile, wsgiFiles } from './apps.ts';
import { placeObjects, type Objects } from './objects.ts';
import { startQuirkServer } from './quirk-servers.ts';

export interface ClosingUpstream {
  name: string;
  /** starts it serving `objects`; the path of object `name` on it */
  start(t: Test, objects: Objects): Promise<{ origin: string; path(name: string): string }>;
}

/** A folder holding the objects (links), removed by the test's teardown. */
export function objectFolder(t: Test, objects: Objects): string {
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-served-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  placeObjects(objects, dir);
  return dir;
}

export const CLOSING_UPSTREAMS: ClosingUpstream[] = [
  {
    name: 'HTTP/1.0 (python3 -m http.server)',
    async start(t, objects) {
      const py = await startPythonHttpServer(t, {});
      placeObjects(objects, py.dir);
      return { origin: py.origin, path: (name) => `/${name}` };
    },
  },
  {
    name: 'Connection: close (gunicorn sync worker)',
    async start(t, objects) {
      const app = await startGunicorn(t, wsgiFiles(objectFolder(t, objects)));
      return { origin: app.origin, path: (name) => `/${name}` };
    },
  },
  {
    name: 'EOF-delimited, no length (CGI under python3 -m http.server)',
    async start(t, objects) {
      const scripts = Object.fromEntries(Object.values(objects).map((o) => [`${o.name}.py`, cgiFile(o.path)]));
      const py = await startPythonHttpServer(t, {}, scripts);
      return { origin: py.origin, path: (name) => `/cgi-bin/${name}.py` };
    },
  },
  {
    name: 'FIN right after a Content-Length body (raw net.Server)',
    async start(t, objects) {
      const raw = await startQuirkServer(t, 'fin-after-body', objectFolder(t, objects));
      return { origin: raw.origin, path: (name) => `/${name}` };
    },
  },
];
