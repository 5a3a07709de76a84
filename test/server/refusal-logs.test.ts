// Every refusal, on every route, leaves exactly one line that the answer's request id finds:
// the data and presign routes' audit events, and a `refused` log line everywhere else (the
// session route, the admin listener, the app front and its websocket upgrades, the router).
// A refusal line says why (reason), what (status, method, the path with credentials redacted)
// and from where (client), and carries no token.
import t, { type Test } from 'tap';
import { request } from 'undici';
import { ADMIN_TOKEN, baseYaml, dataUrl, linesFor, startKeyhole, type LogLine, type Running } from '../helpers/keyhole.ts';
import { exchange, startTestApp } from '../app/test-app.ts';

const SECRET = 'do-not-log-me-0123456789';
const providers = `providers:
  - { name: samples, kind: local, match: "local://samples/", root: ${process.cwd()}/samples }
`;

async function keyhole(t: Test, withApp: boolean): Promise<Running> {
  let app = '';
  if (withApp) {
    const upstream = await startTestApp();
    t.teardown(() => upstream.close());
    app = `app:\n  upstream: ${upstream.origin}\n  maxBodyBytes: 10\n  methods:\n    - { path: /readonly/, allow: [GET, HEAD] }\n`;
  }
  const k = await startKeyhole(baseYaml(providers + app));
  t.teardown(() => k.close());
  return k;
}

/** The request id of an answer: the x-request-id field, else the JSON body's requestId. */
function idOf(headers: Record<string, string | string[] | undefined>, body: string): string {
  const fromHeader = headers['x-request-id'];
  if (typeof fromHeader === 'string') return fromHeader;
  const match = /"requestId":"([^"]+)"/.exec(body);
  if (!match) throw new Error(`no request id in ${body.slice(0, 200)}`);
  return match[1]!;
}

/** The one line a refused request left; fails unless there is exactly one. */
async function oneLine(t: Test, k: Running, id: string, what: string): Promise<LogLine> {
  const lines = await linesFor(k, id);
  // Whatever else might be written for it has had its chance.
  await new Promise((r) => setTimeout(r, 50));
  const all = k.logs.filter((l) => l.requestId === id || l.audit?.id === id);
  t.equal(all.length, 1, `${what}: exactly one line (${all.map((l) => l.msg).join(', ')})`);
  return lines[0]!;
}

function refusedLine(t: Test, line: LogLine, expected: Record<string, unknown>, what: string): void {
  t.match(line, { msg: 'refused', client: '127.0.0.1', ...expected }, what);
  t.type(line.method, 'string', `${what}: the method`);
  t.type(line.path, 'string', `${what}: the path`);
}

t.test('data and presign refusals: their audit event is the line', async (t) => {
  const k = await keyhole(t, false);
  const bad = await k.get(dataUrl('local://samples/a.txt', SECRET));
  t.equal(bad.status, 401);
  const line = await oneLine(t, k, idOf(bad.headers, bad.body.toString()), 'bad token');
  t.match(line, { kind: 'audit', msg: 'access', audit: { kind: 'data', reason: 'token_malformed', status: 401, uri: 'local://samples/a.txt', client: '127.0.0.1' } });

  const post = await k.get(dataUrl('local://samples/a.txt'), {}, 'POST', 'x');
  t.equal(post.status, 405);
  t.match(await oneLine(t, k, idOf(post.headers, post.body.toString()), 'POST /v1/data'), { audit: { kind: 'data', reason: 'method_not_allowed', status: 405 } });

  const presign = await k.get('/v1/presign', { authorization: `Bearer ${SECRET}`, 'content-type': 'application/json' }, 'POST', '{"uris":["local://samples/a.txt"]}');
  t.equal(presign.status, 401);
  t.match(await oneLine(t, k, idOf(presign.headers, presign.body.toString()), 'presign, bad token'), { audit: { kind: 'presign', reason: 'token_malformed', status: 401 } });
  const get = await k.get('/v1/presign');
  t.match(await oneLine(t, k, idOf(get.headers, get.body.toString()), 'GET /v1/presign'), { audit: { kind: 'presign', reason: 'method_not_allowed', status: 405 } });
  t.notOk(k.rawLogs().includes(SECRET), 'no token in any line');
});

t.test('session, admin and router refusals: a refused line each', async (t) => {
  const k = await keyhole(t, false);
  const session = await k.get('/v1/session', { authorization: `Bearer ${SECRET}` }, 'POST');
  t.equal(session.status, 401);
  refusedLine(t, await oneLine(t, k, idOf(session.headers, session.body.toString()), 'session'), { route: 'session', reason: 'token_malformed', status: 401, method: 'POST', path: '/v1/session' }, 'POST /v1/session, bad token');

  const crossSite = await k.get('/v1/session', { origin: 'https://evil.example' }, 'DELETE');
  t.equal(crossSite.status, 403);
  refusedLine(t, await oneLine(t, k, idOf(crossSite.headers, crossSite.body.toString()), 'session DELETE'), { route: 'session', reason: 'cors_origin', status: 403, method: 'DELETE', origin: 'https://evil.example' }, 'DELETE /v1/session, foreign Origin');

  const put = await k.get('/v1/session', {}, 'PUT', 'x');
  refusedLine(t, await oneLine(t, k, idOf(put.headers, put.body.toString()), 'session PUT'), { route: 'session', reason: 'method_not_allowed', status: 405, method: 'PUT' }, 'PUT /v1/session');

  const nowhere = await k.get(`/nowhere?token=${SECRET}`);
  t.equal(nowhere.status, 404);
  refusedLine(t, await oneLine(t, k, idOf(nowhere.headers, nowhere.body.toString()), 'no route'), { route: 'router', reason: 'route_not_found', status: 404, method: 'GET', path: '/nowhere?token=[redacted]' }, 'no such route, no app');

  const absolute = await exchange(k, 'GET http://elsewhere.example/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  t.match(absolute, /^HTTP\/1\.1 400 /);
  refusedLine(t, await oneLine(t, k, idOf({}, absolute), 'absolute-form'), { route: 'router', reason: 'bad_request', status: 400, level: 'warn' }, 'an absolute-form target');

  const upgrade = await exchange(k, 'GET /v1/data HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  t.match(upgrade, /^HTTP\/1\.1 400 /);
  refusedLine(t, await oneLine(t, k, idOf({}, upgrade), 'upgrade on /v1/data'), { route: 'router', reason: 'bad_request', status: 400, upgrade: 'websocket' }, "an upgrade on Keyhole's own route");

  const huge = await exchange(k, `GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
  t.match(huge, /^HTTP\/1\.1 431 /);
  t.match(await oneLine(t, k, idOf({}, huge), 'head too large'), { kind: 'audit', audit: { kind: 'head', reason: 'header_too_large', status: 431, client: '127.0.0.1' } });

  const admin = async (path: string, method: 'GET' | 'POST', headers: Record<string, string> = {}, body?: string) => {
    const res = await request(k.admin + path, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await res.body.text();
    return { status: res.statusCode, id: idOf({}, text) };
  };
  for (const [what, call, expected] of [
    ['wrong credential', () => admin('/admin/revoke', 'POST', { authorization: `Bearer ${SECRET}` }), { reason: 'admin_unauthorized', status: 401, level: 'warn' }],
    ['GET on an action', () => admin('/admin/revoke', 'GET'), { reason: 'method_not_allowed', status: 405 }],
    ['no such admin path', () => admin('/elsewhere', 'GET'), { reason: 'route_not_found', status: 404 }],
    ['a bad revoke body', () => admin('/admin/revoke', 'POST', { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, '{"jti":""}'), { reason: 'bad_request', status: 400 }],
  ] as const) {
    const res = await call();
    t.equal(res.status, expected.status, `admin, ${what}: ${expected.status}`);
    refusedLine(t, await oneLine(t, k, res.id, `admin, ${what}`), { route: 'admin', ...expected }, `admin, ${what}`);
  }
  t.notOk(k.rawLogs().includes(SECRET), 'no token in any line');
  t.notOk(k.rawLogs().includes(ADMIN_TOKEN), 'no admin credential in any line');
});

t.test('app front refusals, websocket upgrades included: a refused line each', async (t) => {
  const k = await keyhole(t, true);
  const denied = await k.get(`/readonly/x?token=${SECRET}`, { 'content-type': 'text/plain' }, 'POST', 'x');
  t.equal(denied.status, 405);
  refusedLine(t, await oneLine(t, k, idOf(denied.headers, denied.body.toString()), 'app 405'), { route: 'app', reason: 'app_method_denied', status: 405, method: 'POST', path: '/readonly/x?token=[redacted]', allow: 'GET, HEAD' }, 'a verb app.methods refuses');

  const large = await k.get('/upload', { 'content-type': 'text/plain' }, 'POST', 'more than ten bytes');
  t.equal(large.status, 413);
  refusedLine(t, await oneLine(t, k, idOf(large.headers, large.body.toString()), 'app 413'), { route: 'app', reason: 'body_too_large', status: 413, method: 'POST', path: '/upload' }, 'a body over app.maxBodyBytes');

  const h2c = await exchange(k, 'GET /anything HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
  t.match(h2c, /^HTTP\/1\.1 400 /);
  refusedLine(t, await oneLine(t, k, idOf({}, h2c), 'h2c'), { route: 'app', reason: 'bad_request', status: 400, upgrade: 'h2c' }, 'an upgrade other than websocket');

  const ws = await exchange(k, 'GET /readonly/ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 3\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nabc');
  t.match(ws, /^HTTP\/1\.1 400 /);
  refusedLine(t, await oneLine(t, k, idOf({}, ws), 'ws with a body'), { route: 'app', reason: 'request_framing', status: 400 }, 'a websocket upgrade with a body');
  t.notOk(k.rawLogs().includes(SECRET), 'no token in any line');
});
