// The app's answer headers reach the browser as the bytes the app sent: a Content-Disposition
// filename in UTF-8 (what Django and Flask send for a non-ASCII name) came out mangled,
// 'é☃' as 0xE9 0x03, when it followed Content-Length (Node re-reads it as UTF-8,
// nodejs/node#46528). A real WSGI app under Debian's gunicorn, read by a raw client.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { baseYaml, startKeyhole } from '../helpers/keyhole.ts';
import { testCerts } from '../helpers/certs.ts';
import { startGunicorn } from '../helpers/real-servers.ts';
import { rawRequest } from '../realworld/support/client.ts';

// WSGI headers are latin-1 strings: each carries the UTF-8 bytes of the name as they are.
const APP = `
NAMES = {
    '/utf8': 'inline; filename="\\u00e9\\u2603.png"'.encode('utf-8').decode('latin-1'),
    '/latin1': 'inline; filename="\\u00e9.png"',
}
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '2'), ('Content-Disposition', NAMES[environ['PATH_INFO']])])
    return [b'ok']
`;

t.test('a Content-Disposition filename in UTF-8 or latin-1 bytes passes through the app front unchanged', async (t) => {
  const app = await startGunicorn(t, APP);
  const k = await startKeyhole(baseYaml(`providers:\n  - { name: samples, kind: local, match: "local://samples/", root: ${process.cwd()}/samples }\napp:\n  upstream: ${app.origin}\n`));
  t.teardown(() => k.close());
  const port = Number(new URL(k.base).port);
  const ca = readFileSync(testCerts().caCert);
  for (const [path, bytes] of [
    ['/utf8', Buffer.from('inline; filename="é☃.png"', 'utf8')],
    ['/latin1', Buffer.from('inline; filename="é.png"', 'latin1')],
  ] as const) {
    const r = await rawRequest({ port, ca, path });
    t.equal(r.status, 200, `${path}: 200`);
    t.ok(r.complete, `${path}: complete`);
    t.equal(r.body.toString(), 'ok', `${path}: the body`);
    t.same(Buffer.from(r.headers['content-disposition'] ?? '', 'latin1'), bytes, `${path}: Content-Disposition byte for byte`);
  }
});
