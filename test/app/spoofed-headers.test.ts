// The app front in front of a real WSGI server (Debian's gunicorn, as Django and Flask apps
// run): headers a client sends to pass for another address, scheme, prefix, method or URL
// never reach the app, and the ones the app may believe are Keyhole's own.
import t from 'tap';
import { baseYaml, startKeyhole } from '../helpers/keyhole.js';
import { startGunicorn } from '../helpers/real-servers.js';

// Echoes every HTTP_* variable and the method the WSGI server saw, as JSON.
const ECHO_APP = `
import json
def application(environ, start_response):
    seen = {k: v for k, v in environ.items() if k.startswith('HTTP_')}
    seen['REQUEST_METHOD'] = environ['REQUEST_METHOD']
    seen['PATH_INFO'] = environ['PATH_INFO']
    body = json.dumps(seen).encode()
    start_response('200 OK', [('Content-Type', 'application/json'), ('Content-Length', str(len(body)))])
    return [body]
`;

const SPOOFED: Record<string, string> = {
  'X-Forwarded-For': '6.6.6.6',
  'X-Forwarded-Proto': 'http',
  'X-Forwarded-Host': 'evil.example',
  'X-Forwarded-Port': '8080',
  'X-Forwarded-Prefix': '/admin',
  'X-Forwarded-Scheme': 'http',
  'X-Forwarded-Ssl': 'off',
  'X-Forwarded-Server': 'evil.example',
  'X-Forwarded-Uri': '/admin/',
  'X-Real-IP': '6.6.6.6',
  Forwarded: 'for=6.6.6.6;proto=http;host=evil.example',
  'X-Client-IP': '6.6.6.6',
  'True-Client-IP': '6.6.6.6',
  'CF-Connecting-IP': '6.6.6.6',
  'Fastly-Client-IP': '6.6.6.6',
  'X-Cluster-Client-IP': '6.6.6.6',
  'X-HTTP-Method-Override': 'DELETE',
  'X-HTTP-Method': 'DELETE',
  'X-Method-Override': 'DELETE',
  'X-Original-Method': 'DELETE',
  'X-Original-URL': '/admin/users/1',
  'X-Original-URI': '/admin/users/1',
  'X-Rewrite-URL': '/admin/users/1',
};

const providers = `providers:
  - { name: samples, kind: local, match: "local://samples/", root: ${process.cwd()}/samples }
`;

const wsgiName = (header: string) => `HTTP_${header.toUpperCase().replace(/-/g, '_')}`;

t.test('no client-sent address, scheme, prefix, method or URL claim reaches a real WSGI app', async (t) => {
  const app = await startGunicorn(t, ECHO_APP);
  const k = await startKeyhole(
    baseYaml(`${providers}app:
  upstream: ${app.origin}
  methods:
    - { path: /api/readonly/, allow: [GET, HEAD] }
`),
  );
  t.teardown(() => k.close());
  const res = await k.get('/api/readonly/items', SPOOFED);
  t.equal(res.status, 200);
  const seen = JSON.parse(res.body.toString()) as Record<string, string>;
  t.equal(seen.REQUEST_METHOD, 'GET', 'the method is the one the rule allowed');
  t.equal(seen.PATH_INFO, '/api/readonly/items');
  for (const [header, value] of Object.entries(SPOOFED)) {
    const got = seen[wsgiName(header)];
    const claims = got !== undefined && (got === value || /6\.6\.6\.6|evil\.example|DELETE|\/admin/.test(got));
    t.notOk(claims, `${header}: the client's value does not arrive (got ${got ?? 'nothing'})`);
  }
  t.equal(seen.HTTP_X_FORWARDED_FOR, '127.0.0.1', 'X-Forwarded-For is the real peer');
  t.equal(seen.HTTP_X_FORWARDED_PROTO, 'https', 'X-Forwarded-Proto is the scheme the client used');
  const sent = Object.keys(seen).filter((k) => k.startsWith('HTTP_X_FORWARDED_')).sort();
  t.same(sent, ['HTTP_X_FORWARDED_FOR', 'HTTP_X_FORWARDED_HOST', 'HTTP_X_FORWARDED_PROTO'], 'only the X-Forwarded-* Keyhole sets');
});

t.test('a trusted proxy keeps X-Forwarded-For/-Proto/-Host, and still cannot claim a method or URL', async (t) => {
  const app = await startGunicorn(t, ECHO_APP);
  const k = await startKeyhole(
    baseYaml(`${providers}app:
  upstream: ${app.origin}
  trustedProxies: [127.0.0.1/32]
`),
  );
  t.teardown(() => k.close());
  const res = await k.get('/x', SPOOFED);
  const seen = JSON.parse(res.body.toString()) as Record<string, string>;
  t.equal(seen.HTTP_X_FORWARDED_FOR, '6.6.6.6, 127.0.0.1', 'the chain is extended');
  t.equal(seen.HTTP_X_FORWARDED_HOST, 'evil.example', 'the proxy names the host');
  for (const header of ['X-Forwarded-Prefix', 'X-Forwarded-Uri', 'X-Client-IP', 'True-Client-IP', 'X-HTTP-Method-Override', 'X-Original-URL', 'X-Rewrite-URL']) {
    t.equal(seen[wsgiName(header)], undefined, `${header}: never, even from a trusted proxy`);
  }
});
