// Keyhole's own origin, as the redirector and POST /v1/session's Origin check use it, never
// comes from the client's Host: server.publicUrl when set; else a Host the served certificate
// names (localhost, 127.0.0.1, ::1 in the test certificate); else none at all.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { testCerts } from '../helpers/certs.ts';
import { baseYaml, startKeyhole, type Running } from '../helpers/keyhole.ts';

const providers = `providers:
  - { name: samples, kind: local, match: "local://samples/", root: ${process.cwd()}/samples }
`;
const withServer = (lines: string) => baseYaml(providers).replace('admin:', `${lines}admin:`);

function redirectPort(k: Running): number {
  return ((k.server as unknown as { redirect: Server }).redirect.address() as AddressInfo).port;
}

/** One raw plain-HTTP exchange with the redirector: any Host, or none. */
function rawRedirect(port: number, head: string): Promise<{ status: number; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.end(head));
    let text = '';
    s.setEncoding('latin1').on('data', (d: string) => (text += d));
    s.on('error', reject);
    s.on('close', () => resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1]), location: /\r\nlocation: ([^\r]*)/i.exec(text)?.[1] }));
  });
}

/** POST /v1/session over TLS to the certificate's name, with a Host and Origin (none: undefined) of our choosing. */
function postSession(k: Running, host: string, origin: string | undefined, token: string, tls = true): Promise<{ status: number; cookie: unknown }> {
  const port = Number(new URL(k.base).port);
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, host, ...(origin !== undefined ? { origin } : {}) };
  return new Promise((resolve, reject) => {
    const done = (res: import('node:http').IncomingMessage) => {
      res.resume();
      resolve({ status: res.statusCode!, cookie: res.headers['set-cookie'] });
    };
    const req = tls
      ? httpsRequest({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(testCerts().caCert), method: 'POST', path: '/v1/session', headers }, done)
      : httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/v1/session', headers }, done);
    req.on('error', reject);
    req.end();
  });
}

t.test('redirector without publicUrl: only a Host the certificate names becomes a Location', async (t) => {
  const k = await startKeyhole(withServer('  redirectHttp: { host: 127.0.0.1, port: 0 }\n'));
  t.teardown(() => k.close());
  const port = redirectPort(k);
  const dataPort = new URL(k.base).port;
  const get = (host: string) => rawRedirect(port, `GET /p?q=1 HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  t.same(await get('LOCALHOST'), { status: 308, location: `https://localhost:${dataPort}/p?q=1` });
  t.same(await get('[::1]:80'), { status: 308, location: `https://[::1]:${dataPort}/p?q=1` }, 'an IPv6 address the certificate names');
  for (const host of ['localhost@evil.example', 'evil.example#@localhost', 'localhost\\@evil.example', 'localhost:80@evil.example', 'evil.example/localhost', '[::2]', 'localhost.', '']) {
    const r = await get(host);
    t.same(r, { status: 400, location: undefined }, `Host ${JSON.stringify(host)}: no redirect`);
  }
  const noHost = await rawRedirect(port, 'GET /p HTTP/1.0\r\n\r\n');
  t.same(noHost, { status: 400, location: undefined }, 'HTTP/1.0 without Host: no redirect');
  const schemeRelative = await rawRedirect(port, 'GET //evil.example/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  t.equal(schemeRelative.location, `https://localhost:${dataPort}//evil.example/x`, 'a //path stays a path on our origin');
});

t.test('redirector with publicUrl: the Location is publicUrl whatever Host says', async (t) => {
  const k = await startKeyhole(withServer('  redirectHttp: { host: 127.0.0.1, port: 0 }\n  publicUrl: https://data.example.org:8443\n'));
  t.teardown(() => k.close());
  const port = redirectPort(k);
  for (const host of ['evil.example', 'localhost', 'data.example.org.evil.example']) {
    t.same(await rawRedirect(port, `GET /a?b HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`), { status: 308, location: 'https://data.example.org:8443/a?b' }, `Host ${host}`);
  }
});

t.test('POST /v1/session with publicUrl: publicUrl is the only own origin, whatever Host says', async (t) => {
  const k = await startKeyhole(withServer('  publicUrl: https://data.example.org\n'));
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['local://samples/'] });
  const port = new URL(k.base).port;
  t.equal((await postSession(k, `localhost:${port}`, 'https://data.example.org', token)).status, 204, 'the public origin');
  for (const [host, origin] of [
    [`localhost:${port}`, `https://localhost:${port}`],
    ['evil.example', 'https://evil.example'],
    ['data.example.org', 'http://data.example.org'],
  ] as const) {
    const r = await postSession(k, host, origin, token);
    t.same(r, { status: 403, cookie: undefined }, `Host ${host}, Origin ${origin}: refused`);
  }
});

t.test('POST /v1/session behind insecurePlainHttp without publicUrl: no Host makes an Origin ours', async (t) => {
  const k = await startKeyhole(baseYaml(providers).replace(/ {2}tls: \{[^\n]*\n/, '  insecurePlainHttp: true\n'));
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['local://samples/'] });
  const port = new URL(k.base).port;
  for (const host of [`localhost:${port}`, 'evil.example']) {
    const r = await postSession(k, host, `http://${host}`, token, false);
    t.same(r, { status: 403, cookie: undefined }, `Host ${host} with an Origin to match: refused`);
  }
  const noOrigin = await postSession(k, 'evil.example', undefined, token, false);
  t.equal(noOrigin.status, 204, 'no Origin: not a browser cross-origin request');
});
