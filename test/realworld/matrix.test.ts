// The real-upstream matrix: Keyhole's data route (an `http` provider) and its app front in
// front of servers no one here wrote, each with its own framing quirks, serving 1 KiB, 1 MiB
// and 50 MiB objects: full reads, a Range, HEAD, slow readers (Keyhole pauses its upstream
// read while the client's socket is full: the undici 7 crash, #5360) and a client leaving
// mid-body. Every cell: exact bytes, exactly one audit event (data route), Keyhole alive.
// Raw servers stand in only for what no packaged server does on demand (support/quirk-servers.ts).
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync, gunzipSync } from 'node:zlib';
import { baseYaml, startKeyhole } from '../helpers/keyhole.ts';
import { testCerts } from '../helpers/certs.ts';
import { startApache, startCaddy, startGunicorn, startNginx, startPythonHttpServer, startUvicorn, type RealServer } from '../helpers/real-servers.ts';
import { rawRequest, sha256 } from './support/client.ts';
import { oneAudit } from './support/audit.ts';
import { asgiFiles, wsgiFiles } from './support/apps.ts';
import { startQuirkServer, type Quirk } from './support/quirk-servers.ts';

t.setTimeout(600_000);

const FILES: Record<string, Buffer> = { small: randomBytes(1024), medium: randomBytes(1 << 20), large: randomBytes(50 << 20) };
const HASH = Object.fromEntries(Object.entries(FILES).map(([k, v]) => [k, sha256(v)]));
const ca = readFileSync(testCerts().caCert);

interface Upstream {
  name: string;
  start(t: Test): Promise<Pick<RealServer, 'origin'>>;
  /** serves Range requests (206); the others answer 200 with the whole object */
  ranges: boolean;
  /** answers HEAD with the object's Content-Length */
  headLength: boolean;
  /** a file stored gzip-encoded, served with Content-Encoding: gzip: checked when set */
  gzip?: string;
}

const TEXT = Buffer.from('annotator notes\n'.repeat(4096));
const nginxFiles = { ...FILES, 'notes.txt': TEXT, 'notes.txt.gz': gzipSync(TEXT) };

const UPSTREAMS: Upstream[] = [
  { name: 'nginx (keep-alive)', start: (t) => startNginx(t, '', FILES), ranges: true, headLength: true },
  { name: 'nginx keepalive_timeout 0', start: (t) => startNginx(t, 'keepalive_timeout 0;', FILES), ranges: true, headLength: true },
  { name: 'nginx keepalive_requests 1', start: (t) => startNginx(t, 'keepalive_requests 1;', FILES), ranges: true, headLength: true },
  { name: 'nginx gzip on + gzip_static', start: (t) => startNginx(t, 'gzip on; gzip_types *; gzip_min_length 0; location /notes.txt { gzip_static always; }', nginxFiles), ranges: true, headLength: true, gzip: 'notes.txt' },
  { name: 'python3 -m http.server (HTTP/1.0)', start: (t) => startPythonHttpServer(t, FILES), ranges: false, headLength: true },
  {
    name: 'gunicorn (WSGI, Connection: close)',
    start: async (t) => {
      const s = await startPythonHttpServer(t, FILES); // only for a folder holding the files
      return startGunicorn(t, wsgiFiles(s.dir));
    },
    ranges: false,
    headLength: true,
  },
  {
    name: 'uvicorn (ASGI)',
    start: async (t) => {
      const s = await startPythonHttpServer(t, FILES);
      return startUvicorn(t, asgiFiles(s.dir));
    },
    ranges: false,
    headLength: true,
  },
  { name: 'Caddy file_server', start: (t) => startCaddy(t, FILES), ranges: true, headLength: true },
  { name: 'Apache httpd', start: (t) => startApache(t, FILES), ranges: true, headLength: true },
  ...(['early-hints', 'trailers', 'eof-delimited', 'fin-after-body'] as Quirk[]).map((quirk) => ({
    name: `raw: ${quirk}`,
    start: async (t: Test) => startQuirkServer(t, quirk, (await startPythonHttpServer(t, FILES)).dir), // the python server only for a folder holding the files
    ranges: false,
    headLength: quirk === 'early-hints' || quirk === 'fin-after-body',
  })),
];

function yamlFor(origin: string): string {
  return baseYaml(`providers:
  - name: up
    kind: http
    match: https://up.test/
    baseUrl: ${origin}/
    allowPrivateNetworks: true
    timeouts: { body: 60s }
app:
  upstream: ${origin}
`);
}

for (const up of UPSTREAMS) {
  t.test(up.name, async (t) => {
    const server = await up.start(t);
    const k = await startKeyhole(yamlFor(server.origin));
    t.teardown(() => k.close());
    const port = Number(new URL(k.base).port);
    const auth = { authorization: `Bearer ${await k.token({ scope: ['https://up.test/'] })}` };
    const data = (name: string) => `/v1/data?uri=${encodeURIComponent(`https://up.test/${name}`)}`;
    const ask = (path: string, o: Partial<Parameters<typeof rawRequest>[0]> = {}) => rawRequest({ port, ca, path, ...o, headers: { ...auth, ...o.headers } });

    for (const name of Object.keys(FILES)) {
      const what = `data GET ${name}`;
      const r = await ask(data(name));
      t.equal(r.status, 200, what);
      t.ok(r.complete, `${what}: complete by its framing`);
      t.equal(r.sha256, HASH[name], `${what}: exact bytes`);
      const audit = await oneAudit(t, k.audits, r, what);
      t.match(audit, { reason: 'ok', bytes: FILES[name]!.length, aborted: false }, `${what}: audited as served`);
    }

    const range = await ask(data('medium'), { headers: { range: 'bytes=100-199' } });
    if (up.ranges) {
      t.equal(range.status, 206, 'data Range: 206');
      t.equal(range.headers['content-range'], `bytes 100-199/${FILES.medium!.length}`);
      t.same(range.body, FILES.medium!.subarray(100, 200), 'data Range: exact bytes');
    } else {
      t.equal(range.status, 200, 'data Range on a server without ranges: the whole object');
      t.equal(range.sha256, HASH.medium);
    }
    await oneAudit(t, k.audits, range, 'data Range');

    const head = await ask(data('medium'), { method: 'HEAD' });
    t.equal(head.status, 200, 'data HEAD');
    t.equal(head.body.length, 0, 'data HEAD: no body');
    if (up.headLength) t.equal(head.headers['content-length'], String(FILES.medium!.length), 'data HEAD: the length');
    await oneAudit(t, k.audits, head, 'data HEAD');

    for (const [name, pauseMs] of [['medium', 600], ['large', 400]] as const) {
      const what = `data slow reader ${name}`;
      const r = await ask(data(name), { pace: { stallMs: pauseMs } });
      t.equal(r.status, 200, what);
      t.ok(r.complete, `${what}: complete`);
      t.equal(r.sha256, HASH[name], `${what}: exact bytes`);
      await oneAudit(t, k.audits, r, what);
    }

    const left = await ask(data('large'), { abortAfter: 256 * 1024 });
    const abortAudit = await oneAudit(t, k.audits, left, 'data client leaves mid-body');
    t.match(abortAudit, { aborted: true }, 'the audit says the client left');

    if (up.gzip) {
      const gz = await ask(data(up.gzip));
      t.equal(gz.headers['content-encoding'], 'gzip', 'a stored-gzip object keeps its Content-Encoding');
      t.same(gunzipSync(gz.body), TEXT, 'and its bytes decode to the object');
      await oneAudit(t, k.audits, gz, 'data gzip');
    }

    // The app front in front of the same server.
    const appGet = await ask('/medium', { headers: {} });
    t.equal(appGet.status, 200, 'app GET');
    t.equal(appGet.sha256, HASH.medium, 'app GET: exact bytes');
    const appSlow = await ask('/large', { pace: { stallMs: 400 } });
    t.equal(appSlow.status, 200, 'app slow reader');
    t.ok(appSlow.complete, 'app slow reader: complete');
    t.equal(appSlow.sha256, HASH.large, 'app slow reader: exact bytes');
    const appHead = await ask('/medium', { method: 'HEAD' });
    t.equal(appHead.status, 200, 'app HEAD');
    await ask('/large', { abortAfter: 128 * 1024 });

    // Still serving after all of it.
    const after = await ask(data('small'));
    t.equal(after.sha256, HASH.small, 'Keyhole is alive and serving');
  });
}

