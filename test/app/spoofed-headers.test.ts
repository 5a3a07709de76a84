// The app front in front of a real WSGI server (Debian's gunicorn, as Django and Flask apps
// run): headers a client sends to pass for another address, scheme, prefix, method or URL
// never reach the app, and the ones the app may believe are Keyhole's own.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { testCerts } from '../helpers/certs.ts';
import { baseYaml, startKeyhole } from '../helpers/keyhole.ts';
import { startGunicorn } from '../helpers/real-servers.ts';

// Echoes every HTTP_* variable and the method the WSGI server saw, as JSON.
const ECHO_APP = `
import json
def application(environ, start_response):
    seen = {k: v for k, v in environ.items() if k.startswith('HTTP_')}
    seen['REQUEST_METHOD'] = environ['REQUEST_METHOD']
    seen['PATH_INFO'] = environ['PATH_INFO']
    seen['SCRIPT_NAME'] = environ.get('SCRIPT_NAME', '')
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
  // the same claims under other names frameworks and CDNs read
  'Client-IP': '6.6.6.6',
  'X-Forwarded': 'for=6.6.6.6',
  'Forwarded-For': '6.6.6.6',
  'X-Originating-IP': '6.6.6.6',
  'X-Remote-IP': '6.6.6.6',
  'X-Remote-Addr': '6.6.6.6',
  'X-ProxyUser-IP': '6.6.6.6',
  'X-AppEngine-User-IP': '6.6.6.6',
  'X-Azure-ClientIP': '6.6.6.6',
  'CF-Visitor': '{"scheme":"evil.example"}',
  'Front-End-Https': 'evil.example',
  'X-Url-Scheme': 'evil.example',
  'X-Scheme': 'evil.example',
  'X-Host': 'evil.example',
  'X-Original-Host': 'evil.example',
  'X-Script-Name': '/admin',
  'X-Envoy-Original-Path': '/admin/users/1',
  'X-Envoy-Retry-On': '5xx',
  'X-Middleware-Subrequest': 'middleware:middleware:middleware:middleware:middleware',
  'X-Now-Route-Matches': 'evil.example',
  // who the client is, as an authenticating proxy would assert it
  'Remote-User': 'admin',
  'X-Remote-User': 'admin',
  'X-Forwarded-User': 'admin',
  'X-Forwarded-Email': 'admin@evil.example',
  'X-Auth-Request-User': 'admin',
  'X-Auth-Request-Email': 'admin@evil.example',
  'X-Amzn-Oidc-Identity': 'admin',
  'X-Goog-Authenticated-User-Email': 'accounts.google.com:admin@evil.example',
  'X-MS-Client-Principal-Name': 'admin@evil.example',
  'X-WebAuth-User': 'admin',
  'X-SSL-Client-Verify': 'SUCCESS',
  'SSL-Client-Cert': 'evil.example',
  'X-Client-Cert': 'evil.example',
  'X-ARR-ClientCert': 'evil.example',
  'X-Forwarded-Client-Cert': 'By=spiffe://evil.example',
  // found by a red-team run against this list: Authelia, authentik, Cloudflare Access,
  // Tailscale, Pomerium, generic user headers, Java-style and other client addresses
  'Remote-Groups': 'admins',
  'Remote-Email': 'admin@evil.example',
  'Remote-Name': 'admin',
  'X-authentik-username': 'admin',
  'X-authentik-groups': 'admins',
  'Cf-Access-Authenticated-User-Email': 'admin@evil.example',
  'Tailscale-User-Login': 'admin@evil.example',
  'X-Pomerium-Claim-Email': 'admin@evil.example',
  'X-Authenticated-User': 'admin',
  'X-Auth-User': 'admin',
  'X-User': 'admin',
  'Proxy-Client-IP': '6.6.6.6',
  'WL-Proxy-Client-IP': '6.6.6.6',
  'Fly-Client-IP': '6.6.6.6',
  'X-Real-Client-IP': '6.6.6.6',
  'X-Custom-IP-Authorization': '6.6.6.6',
  'X-Original-Remote-Addr': '6.6.6.6',
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
    const claims = got !== undefined && (got === value || /6\.6\.6\.6|evil\.example|DELETE|\/admin|SUCCESS|5xx|middleware/.test(got));
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
  for (const header of ['X-Forwarded-Prefix', 'X-Forwarded-Uri', 'X-Forwarded-User', 'X-Forwarded-Client-Cert', 'X-Client-IP', 'True-Client-IP', 'X-HTTP-Method-Override', 'X-Original-URL', 'X-Rewrite-URL', 'Remote-User', 'X-Auth-Request-User', 'X-Envoy-Retry-On']) {
    t.equal(seen[wsgiName(header)], undefined, `${header}: never, even from a trusted proxy`);
  }
});

// A CGI-style gateway turns a header name into HTTP_<NAME> with `-` → `_` (gunicorn, uWSGI,
// mod_wsgi, PHP-FPM): `X_Forwarded_For` becomes the same variable as `X-Forwarded-For`, and
// gunicorn 20 reads a header named SCRIPT_NAME as the WSGI SCRIPT_NAME. nginx (by default)
// and Apache httpd drop such names; so must the app front.
const FOLDED: Record<string, string> = {
  X_Forwarded_For: '6.6.6.6',
  X_Forwarded_Host: 'evil.example',
  X_Forwarded_Proto: 'evil.example',
  X_Forwarded_Prefix: '/admin',
  X_Real_IP: '6.6.6.6',
  'X-Client_IP': '6.6.6.6',
  X_HTTP_Method_Override: 'DELETE',
  X_Original_URL: '/admin/users/1',
  Remote_User: 'admin',
  'X.Forwarded.For': '6.6.6.6',
};

t.test('header names a CGI-style gateway folds onto another name (underscores, dots) never reach a real WSGI app', async (t) => {
  const app = await startGunicorn(t, ECHO_APP);
  const k = await startKeyhole(baseYaml(`${providers}app:\n  upstream: ${app.origin}\n`));
  t.teardown(() => k.close());
  const res = await k.get('/x', FOLDED);
  t.equal(res.status, 200);
  const seen = JSON.parse(res.body.toString()) as Record<string, string>;
  t.equal(seen.HTTP_X_FORWARDED_FOR, '127.0.0.1', 'X-Forwarded-For is the real peer, nothing joined to it');
  t.equal(seen.HTTP_X_FORWARDED_PROTO, 'https');
  t.equal(seen.HTTP_X_FORWARDED_HOST, new URL(k.base).host);
  for (const [header, value] of Object.entries(FOLDED)) {
    const hit = Object.entries(seen).find(([, v]) => typeof v === 'string' && v.includes(value));
    t.equal(hit, undefined, `${header}: the client's value reaches the app under no name`);
  }
});

t.test('a header named SCRIPT_NAME cannot move the path the app routes past an app.methods rule', async (t) => {
  const app = await startGunicorn(t, ECHO_APP);
  const k = await startKeyhole(
    baseYaml(`${providers}app:
  upstream: ${app.origin}
  methods:
    - { path: /api/users/, allow: [GET, HEAD] }
`),
  );
  t.teardown(() => k.close());
  t.equal((await k.get('/api/users/1', {}, 'DELETE')).status, 405, 'the rule holds on its own path');
  const res = await k.get('/public/api/users/1', { SCRIPT_NAME: '/public' }, 'DELETE');
  const seen = res.status === 200 ? (JSON.parse(res.body.toString()) as Record<string, string>) : {};
  t.equal(seen.SCRIPT_NAME, '', 'the app gets no SCRIPT_NAME from the client');
  t.equal(seen.PATH_INFO, '/public/api/users/1', 'the app routes the path Keyhole checked, not /api/users/1');
});

t.test('with server.publicUrl set, a made-up Host never reaches the app: Host and X-Forwarded-Host are the public host', async (t) => {
  const app = await startGunicorn(t, ECHO_APP);
  const k = await startKeyhole(baseYaml(`${providers}app:\n  upstream: ${app.origin}\n`).replace('server:\n', 'server:\n  publicUrl: https://data.example.org\n'));
  t.teardown(() => k.close());
  // TLS to localhost (the certificate's name), and a head naming another host: a raw client,
  // or a password-reset request crafted to make the app mail a link to evil.example.
  const port = Number(new URL(k.base).port);
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(testCerts().caCert), path: '/accounts/password/reset/', headers: { host: 'evil.example' } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(res.status, 200);
  const seen = JSON.parse(res.body) as Record<string, string>;
  t.equal(seen.HTTP_HOST, 'data.example.org');
  t.equal(seen.HTTP_X_FORWARDED_HOST, 'data.example.org');
  t.notMatch(JSON.stringify(seen), /evil\.example/);
});
