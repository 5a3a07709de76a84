// The app reverse proxy end to end: a real Keyhole in front of a real test app.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { WebSocket, type Dispatcher } from 'undici';
import { baseYaml, dataUrl, startKeyhole, type Running } from '../helpers/keyhole.ts';
import { testCerts } from '../helpers/certs.ts';
import { exchange, startTestApp, type TestApp } from './test-app.ts';

const providers = `providers:
  - { name: samples, kind: local, match: "local://samples/", root: ${process.cwd()}/samples }
`;

let slowClosed: () => void = () => undefined;
const slowClosedP = new Promise<void>((r) => (slowClosed = r));

let app: TestApp;
let k: Running;

t.before(async () => {
  app = await startTestApp({
    '/resp': (_req, res) => {
      res.writeHead(200, [
        ['content-type', 'text/plain'],
        ['connection', 'X-Internal'],
        ['x-internal', 'secret-topology'],
        ['keep-alive', 'timeout=3'],
        ['strict-transport-security', 'max-age=0'],
        ['set-cookie', 'a=1; Path=/; SameSite=None; HttpOnly'],
        ['set-cookie', 'csrftoken=abc; Path=/'],
        ['set-cookie', '__Host-keyhole=planted; Path=/; Secure'],
        ['x-app', 'yes'],
      ]);
      res.end('ok');
    },
    '/own-referrer-policy': (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'referrer-policy': 'strict-origin' });
      res.end('ok');
    },
    '/slow': (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first bytes');
      res.on('close', () => slowClosed());
    },
    '/hang': () => undefined,
  });
  k = await startKeyhole(
    baseYaml(`${providers}app:
  upstream: ${app.origin}
  maxBodyBytes: 1024
  timeouts: { headers: 400ms }
  cookies: { scriptReadable: [csrftoken], sameSite: Lax }
  methods:
    - { path: /api/readonly/, allow: [GET, HEAD] }
    - { path: /api/readonly/admin, allow: [DELETE] }
`),
  );
});
t.teardown(async () => {
  await k.close();
  await app.close();
});

const lastRequest = (url: string) => [...app.requests].reverse().find((r) => r.url === url);

t.test('forwards with X-Forwarded-* replaced and hop-by-hop headers removed', async (t) => {
  const answer = await exchange(
    k,
    'GET /page?x=1 HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: http\r\n' +
      'Forwarded: for=1.2.3.4\r\nX-Real-IP: 9.9.9.9\r\nConnection: close, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n' +
      'Proxy-Authorization: Basic eDp5\r\nCookie: __Host-keyhole=a.b.c; sessionid=abc\r\nAuthorization: Token app-token\r\n\r\n',
  );
  t.match(answer, /^HTTP\/1\.1 200/);
  t.match(answer, /strict-transport-security: max-age=\d+/i, 'HSTS on app answers');
  const r = lastRequest('/page?x=1')!;
  t.ok(r, 'the app got the request, query intact');
  t.equal(r.headers['x-forwarded-for'], '127.0.0.1', 'XFF replaced by the real peer');
  t.equal(r.headers['x-forwarded-proto'], 'https');
  t.equal(r.headers['x-forwarded-host'], 'localhost');
  t.equal(r.headers.host, 'localhost', 'Host preserved');
  for (const h of ['forwarded', 'x-real-ip', 'x-secret', 'keep-alive', 'te', 'proxy-authorization']) t.equal(r.headers[h], undefined, `${h} not forwarded`);
  t.equal(r.headers.cookie, 'sessionid=abc', "Keyhole's session cookie is not passed to the app, the app's is");
  t.equal(r.headers.authorization, 'Token app-token', "the app's own credential passes");
});

t.test('a trusted proxy keeps its X-Forwarded-*', async (t) => {
  const k2 = await startKeyhole(baseYaml(`${providers}app:\n  upstream: ${app.origin}\n  trustedProxies: [127.0.0.0/8]\n`));
  t.teardown(() => k2.close());
  const answer = await exchange(
    k2,
    'GET /trusted HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: app.example\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n',
  );
  t.match(answer, /^HTTP\/1\.1 200/);
  const r = lastRequest('/trusted')!;
  t.equal(r.headers['x-forwarded-for'], '6.6.6.6, 127.0.0.1', 'the chain is extended');
  t.equal(r.headers['x-forwarded-host'], 'app.example');
});

t.test('the app answer: hop-by-hop removed, HSTS ours, cookies hardened', async (t) => {
  const res = await k.get('/resp');
  t.equal(res.status, 200);
  t.equal(res.body.toString(), 'ok');
  t.equal(res.headers['x-app'], 'yes', 'ordinary headers pass');
  t.equal(res.headers['x-internal'], undefined, 'a header named in Connection is dropped');
  t.not(res.headers['keep-alive'], 'timeout=3', "the app's Keep-Alive stays on its own hop");
  t.match(res.headers['strict-transport-security'], /^max-age=31536000/, "Keyhole's HSTS, not the app's max-age=0");
  const cookies = res.headers['set-cookie'] as string[];
  t.same(cookies, ['a=1; Path=/; Secure; HttpOnly; SameSite=Lax', 'csrftoken=abc; Path=/; Secure; SameSite=Lax'], 'Secure added, SameSite forced, HttpOnly unless script-readable; the planted session cookie dropped');
  // no-referrer here would make a same-origin form POST carry `Origin: null` and no Referer:
  // Django's and Flask-WTF's CSRF checks refuse those (found by test/e2e/labeling-app.test.ts).
  t.equal(res.headers['referrer-policy'], 'same-origin', 'an app page sends its referrer to its own origin only');
  t.equal((await k.get('/own-referrer-policy')).headers['referrer-policy'], 'strict-origin', "the app's own policy wins");
  t.equal((await k.get(dataUrl('local://files/a.txt'))).headers['referrer-policy'], 'no-referrer', 'data answers keep no-referrer');
});

t.test('per-path verb allowlist, on normalised paths', async (t) => {
  const before = app.requests.length;
  for (const path of ['/api/readonly/x', '/api//readonly/x', '/api/./readonly/x', '/api/%72eadonly/x', '/api/other/../readonly/x', '/API/ReadOnly/x', '/api;p=1/readonly;v=2/x']) {
    const res = await k.get(path, { 'content-type': 'text/plain' }, 'POST', 'data');
    t.equal(res.status, 405, `POST ${path}`);
    t.equal(JSON.parse(res.body.toString()).error, 'app_method_denied');
    t.equal(res.headers.allow, 'GET, HEAD');
  }
  t.equal(app.requests.length, before, 'none reached the app');
  t.equal((await k.get('/api/readonly/x')).status, 200, 'GET allowed');
  t.equal((await k.get('/api/readonly/admin', {}, 'DELETE')).status, 200, 'the longer rule wins');
  t.equal((await k.get('/api/readonly/admin')).status, 405);
  t.equal((await k.get('/elsewhere', {}, 'PUT', 'x')).status, 200, 'default methods elsewhere');
  const trace = await exchange(k, 'TRACE /elsewhere HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  t.match(trace, /^HTTP\/1\.1 405/, 'TRACE is never forwarded');
  const bad = await exchange(k, 'GET /a/%2e%2e%2fsecret HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  t.match(bad, /^HTTP\/1\.1 400/, 'an encoded traversal is refused');
});

t.test('body limit: declared or streamed, 413 and the rest never forwarded', async (t) => {
  const declared = await exchange(
    k,
    `POST /upload-cl HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2000\r\n\r\n${'x'.repeat(2000)}GET /after-413 HTTP/1.1\r\nHost: localhost\r\n\r\n`,
  );
  t.match(declared, /^HTTP\/1\.1 413/);
  t.match(declared, /body_too_large/);
  t.notOk(app.started.includes('/upload-cl'), 'an oversized declared body is refused before the app is asked');
  t.notOk(app.started.includes('/after-413'), 'a request pipelined behind the refusal is not forwarded');
  // Streamed: the first chunk is forwarded; the one that crosses the limit cuts the upload.
  const port = Number(new URL(k.base).port);
  const up = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(testCerts().caCert) });
  up.on('error', () => undefined);
  const answer: Buffer[] = [];
  up.on('data', (d: Buffer) => answer.push(d));
  const closed = new Promise<void>((r) => up.on('close', () => r()));
  const started = app.waitStarted('/upload-chunked');
  up.write(`POST /upload-chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n${'a'.repeat(600)}\r\n`);
  await started;
  up.write(`258\r\n${'b'.repeat(600)}\r\n`);
  await closed;
  t.match(Buffer.concat(answer).toString('latin1'), /^HTTP\/1\.1 413/, 'a streamed body is cut at the limit');
  await app.waitAborted('/upload-chunked');
  t.notOk(app.requests.some((r) => r.url === '/upload-chunked'), 'the app never saw a complete request');
  const small = await k.get('/upload-ok', { 'content-type': 'text/plain' }, 'POST', 'y'.repeat(1024));
  t.equal(small.status, 200, 'exactly at the limit passes');
  t.equal(lastRequest('/upload-ok')!.body.length, 1024);
});

t.test('the client going away aborts the app request', async (t) => {
  const port = Number(new URL(k.base).port);
  const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(testCerts().caCert) });
  socket.on('error', () => undefined);
  socket.write('GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n');
  await new Promise<void>((r) => socket.once('data', () => r()));
  socket.destroy();
  await slowClosedP;
  t.pass('the app saw its response closed when the browser left');

  // Mid-upload: the app sees its request body end early.
  const up = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(testCerts().caCert) });
  up.on('error', () => undefined);
  const started = app.waitStarted('/upload-abort');
  up.write('POST /upload-abort HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
  await started;
  up.destroy();
  await app.waitAborted('/upload-abort');
  t.pass('the app saw the upload aborted');
});

t.test('app timeouts and failures map to 504 and 502', async (t) => {
  const hang = await k.get('/hang');
  t.equal(hang.status, 504);
  t.equal(JSON.parse(hang.body.toString()).error, 'upstream_timeout');
  const dead = await startKeyhole(baseYaml(`${providers}app:\n  upstream: http://127.0.0.1:1\n`));
  t.teardown(() => dead.close());
  const res = await dead.get('/anything');
  t.equal(res.status, 502);
  t.equal(JSON.parse(res.body.toString()).error, 'upstream_error');
  t.notMatch(res.body.toString(), /127\.0\.0\.1:1/, 'the app address is not disclosed');
});

t.test("Keyhole's own routes are not proxied", async (t) => {
  const before = app.requests.length;
  const token = await k.token({ scope: ['local://samples/'] });
  const res = await k.get(dataUrl('local://samples/hello.txt'), { authorization: `Bearer ${token}` });
  t.equal(res.status, 200);
  t.equal((await k.get('/v1/session', {}, 'PUT')).status, 405);
  t.equal(app.requests.length, before);
});

t.test('websockets pass through; other upgrades and Keyhole routes are refused', async (t) => {
  const ws = new WebSocket(`${k.base.replace('https', 'wss')}/ws/echo`, { dispatcher: k.dispatcher as Dispatcher });
  const reply = await new Promise<string>((resolve, reject) => {
    ws.onopen = () => ws.send('hello');
    ws.onmessage = (e) => resolve(String(e.data));
    ws.onerror = () => reject(new Error('websocket failed'));
  });
  t.equal(reply, 'echo:hello', 'frames go both ways');
  const closed = new Promise<void>((r) => (ws.onclose = () => r()));
  ws.close();
  await closed;
  const wsReq = lastRequest('/ws/echo')!;
  t.equal(wsReq.headers['x-forwarded-for'], '127.0.0.1');
  t.equal(wsReq.headers.upgrade, 'websocket');

  const handshake = (path: string, upgrade = 'websocket') =>
    exchange(
      k,
      `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: ${upgrade}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    );
  const refused = await handshake('/ws/refuse');
  t.match(refused, /^HTTP\/1\.1 403/, "the app's refusal is relayed");
  t.match(refused, /forbidden$/);
  t.match(await handshake('/v1/data'), /^HTTP\/1\.1 400/, 'no upgrade on Keyhole routes');
  t.match(await handshake('/ws/echo', 'h2c'), /^HTTP\/1\.1 400/, 'only websocket upgrades');
  // An upgrade gets the head checks every request gets: two Hosts, asterisk- or
  // absolute-form, an obfuscated Transfer-Encoding (found by a red-team run: they got 101).
  const seen = app.requests.length;
  const upgrade = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
  for (const [what, head] of [
    ['two Host headers', 'GET /ws/echo HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n'],
    ['asterisk-form', 'GET * HTTP/1.1\r\nHost: localhost\r\n'],
    ['absolute-form', 'GET http://evil.example/ws/echo HTTP/1.1\r\nHost: localhost\r\n'],
    ['Transfer-Encoding: xchunked', 'GET /ws/echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n'],
  ]) {
    t.match(await exchange(k, head + upgrade), /^HTTP\/1\.1 400/, `an upgrade with ${what}: 400`);
  }
  t.equal(app.requests.length, seen, 'none of them reached the app');
  const ok = await new Promise<string>((resolve) => {
    const port = Number(new URL(k.base).port);
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(testCerts().caCert) });
    s.write('GET /ws/raw HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    s.once('data', (d: Buffer) => {
      resolve(d.toString('latin1'));
      s.destroy();
    });
  });
  t.match(ok, /^HTTP\/1\.1 101/);
  t.match(ok, /sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
  t.match(ok, /set-cookie: ws=1; Path=\/; Secure; HttpOnly; SameSite=Lax/i, 'cookies on the 101 are hardened too');
});

t.test('without an app section, other paths are 404 route_not_found', async (t) => {
  const bare = await startKeyhole(baseYaml(providers));
  t.teardown(() => bare.close());
  const res = await bare.get('/label');
  t.equal(res.status, 404);
  t.equal(JSON.parse(res.body.toString()).error, 'route_not_found');
});
