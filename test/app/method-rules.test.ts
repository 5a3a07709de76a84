// app.methods in front of a real WSGI server (Debian's gunicorn, as Django runs): a spelling
// of the path or the method that some router reads differently neither slips past a rule nor
// lands in a laxer, longer rule; methods are case-sensitive tokens (RFC 9110 §9.1).
import t, { type Test } from 'tap';
import { baseYaml, startKeyhole, type Running } from '../helpers/keyhole.ts';
import { startGunicorn } from '../helpers/real-servers.ts';
import { exchange } from './test-app.ts';

// Echoes what the WSGI server handed the app: the method and the path it routes on.
const ECHO_APP = `
import json
def application(environ, start_response):
    body = json.dumps({'method': environ['REQUEST_METHOD'], 'path': environ['PATH_INFO']}).encode()
    start_response('200 OK', [('Content-Type', 'application/json'), ('Content-Length', str(len(body)))])
    return [body]
`;

const providers = `providers:
  - { name: samples, kind: local, match: "local://samples/", root: ${process.cwd()}/samples }
`;

async function keyholeWith(t: Test, rules: string): Promise<Running> {
  const app = await startGunicorn(t, ECHO_APP);
  const k = await startKeyhole(baseYaml(`${providers}app:\n  upstream: ${app.origin}\n  methods:\n${rules}`));
  t.teardown(() => k.close());
  return k;
}

t.test('a spelling cannot move a path from a strict rule into a laxer, longer one', async (t) => {
  // /admin/ok/ may be POSTed; the rest of /admin/ (Django: path('admin/<name>/', …)) is read-only.
  const k = await keyholeWith(t, '    - { path: /admin/, allow: [GET, HEAD] }\n    - { path: /admin/ok/, allow: [GET, HEAD, POST] }\n');
  const ok = await k.get('/admin/ok/', { 'content-type': 'text/plain' }, 'POST', 'x');
  t.equal(ok.status, 200, 'the longer rule allows POST on its own path');
  t.same(JSON.parse(ok.body.toString()), { method: 'POST', path: '/admin/ok/' });
  // Each is /admin/ok/ to one router and /admin/<name>/ to another: gunicorn + Django keep
  // case, `;params` and `//`; Express matches the still-encoded path.
  for (const path of ['/admin/OK/', '/admin/Ok/', '/admin/ok;x=1/', '/admin//ok/', '/admin/%6Fk/']) {
    const res = await k.get(path, { 'content-type': 'text/plain' }, 'POST', 'x');
    t.equal(res.status, 405, `POST ${path}: /admin/'s rule holds (the app would route ${res.status === 200 ? JSON.parse(res.body.toString()).path : 'nothing'})`);
    t.equal(res.headers.allow, 'GET, HEAD', 'Allow: what every reading allows');
  }
  t.equal((await k.get('/admin/OK/')).status, 200, 'GET, allowed under every reading, passes');
});

t.test('a ?_method= override (Laravel/Symfony, Express method-override) must be allowed too', async (t) => {
  const k = await keyholeWith(t, '    - { path: /api/users/, allow: [GET, HEAD, POST] }\n');
  t.equal((await k.get('/api/users/?page=2', { 'content-type': 'text/plain' }, 'POST', 'x')).status, 200, 'POST allowed');
  // `_%6Dethod`, `.method`, `[method`: names frameworks read as _method (found by a review)
  for (const query of ['_method=DELETE', '_method=delete', '%5Fmethod=PUT', 'a=1&_method=GET&_method=PATCH', '_%6Dethod=DELETE', '.method=DELETE', '[method=DELETE', '%2Emethod=PUT']) {
    const res = await k.get(`/api/users/1?${query}`, { 'content-type': 'text/plain' }, 'POST', 'x');
    t.equal(res.status, 405, `POST ?${query}: the override is a method the rule does not allow`);
  }
  t.equal((await k.get('/api/users/1?_method=GET', { 'content-type': 'text/plain' }, 'POST', 'x')).status, 200, 'an override the rule allows passes');
});

t.test('methods are case-sensitive tokens; unknown ones get the default list', async (t) => {
  const k = await keyholeWith(t, '    - { path: /dav/, allow: [GET, PROPFIND] }\n');
  for (const method of ['get', 'Get', 'FOO']) {
    const answer = await exchange(k, `${method} /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    t.match(answer, /^HTTP\/1\.1 400 /, `${method}: not a method Keyhole knows, refused before any rule`);
    t.notMatch(answer, /"method"/, `${method}: never reached the app`);
  }
  const propfind = await exchange(k, 'PROPFIND /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  t.match(propfind, /^HTTP\/1\.1 405 /, 'PROPFIND is not in app.defaultMethods');
  t.match(propfind, /\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n/i);
  const listed = await exchange(k, 'PROPFIND /dav/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  t.match(listed, /^HTTP\/1\.1 200 /, 'PROPFIND where a rule lists it');
  t.match(listed, /"method": "PROPFIND"/);
});
