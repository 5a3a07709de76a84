// The app front alone in front of a real WSGI server that closes after every answer
// (gunicorn, as Label Studio's Django runs behind it): large answers read at the client's
// pace, slow readers included. On undici 7 the first such page load crashed Keyhole.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { testCerts } from '../helpers/certs.ts';
import { baseYaml, startKeyhole } from '../helpers/keyhole.ts';
import { startGunicorn, startPythonHttpServer } from '../helpers/real-servers.ts';
import { wsgiFiles } from './support/apps.ts';
import { rawRequest, sha256 } from './support/client.ts';

t.test('app front: whole answers from a closing WSGI server, at any reading pace', async (t) => {
  const bundle = randomBytes(16 << 20); // a large JS bundle or an export
  const files = await startPythonHttpServer(t, { 'bundle.js': bundle, 'page.html': '<!doctype html><p>ok</p>' });
  const app = await startGunicorn(t, wsgiFiles(files.dir));
  const k = await startKeyhole(
    baseYaml(`providers:
  - { name: samples, kind: local, match: "local://samples/", root: ${process.cwd()}/samples }
app:
  upstream: ${app.origin}
`),
  );
  t.teardown(() => k.close());
  const port = Number(new URL(k.base).port);
  const ca = readFileSync(testCerts().caCert);
  const answers = await Promise.all([0, 300, 0, 600].map((pauseMs) => rawRequest({ port, ca, path: '/bundle.js', pace: { stallMs: pauseMs } })));
  for (const [i, a] of answers.entries()) {
    t.equal(a.status, 200, `bundle ${i}`);
    t.ok(a.complete, `bundle ${i}: complete`);
    t.equal(a.sha256, sha256(bundle), `bundle ${i}: exact bytes`);
  }
  const page = await rawRequest({ port, ca, path: '/page.html' });
  t.equal(page.body.toString(), '<!doctype html><p>ok</p>', 'Keyhole is alive and serving the app');
});
