// HTTPS on the data listener: TLS 1.2+ only, HSTS on every HTTPS answer, and the optional
// plain-HTTP listener that only redirects (308) to HTTPS.
import t from 'tap';
import { connect, type ConnectionOptions } from 'node:tls';
import { request as httpRequest } from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { baseYaml, startKeyhole } from '../helpers/keyhole.ts';
import { testCerts } from '../helpers/certs.ts';
import { ensureDevCerts } from '../../src/tls/devca.ts';

const root = mkdtempSync(join(tmpdir(), 'keyhole-tls-'));
const providers = `providers:
  - { name: files, kind: local, match: "local://files/", root: ${root} }
`;

function handshake(port: number, opts: ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(testCerts().caCert), ...opts }, () => {
      const v = s.getProtocol() ?? '?';
      s.end();
      resolve(v);
    });
    s.on('error', reject);
  });
}

t.test('TLS 1.2 and 1.3 accepted, TLS 1.1 and 1.0 refused', async (t) => {
  const k = await startKeyhole(baseYaml(providers));
  t.teardown(() => k.close());
  const port = Number(new URL(k.base).port);
  t.equal(await handshake(port, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }), 'TLSv1.2');
  t.equal(await handshake(port, { minVersion: 'TLSv1.3' }), 'TLSv1.3');
  // SECLEVEL=0 lets this client offer TLS 1.1 at all; the server must still refuse it.
  for (const v of ['TLSv1.1', 'TLSv1'] as const) {
    const err = await handshake(port, { minVersion: v, maxVersion: v, ciphers: 'DEFAULT@SECLEVEL=0' }).then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e,
    );
    t.ok(err, `${v} refused`);
    t.match(String(err?.code), /ALERT_PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/, `${v}: refused for its protocol version (${err?.code})`);
  }
});

t.test('minVersion: TLSv1.3 refuses 1.2', async (t) => {
  const k = await startKeyhole(baseYaml(providers).replace(/key: ([^ ]+) \}/, 'key: $1, minVersion: TLSv1.3 }'));
  t.teardown(() => k.close());
  const port = Number(new URL(k.base).port);
  t.equal(await handshake(port, {}), 'TLSv1.3');
  await t.rejects(handshake(port, { maxVersion: 'TLSv1.2' }));
});

t.test('HSTS on HTTPS answers, configurable', async (t) => {
  const k = await startKeyhole(baseYaml(providers).replace('admin:', '  hsts: { maxAge: 600, includeSubDomains: false, preload: true }\nadmin:'));
  t.teardown(() => k.close());
  for (const path of ['/v1/data', '/nope', '/v1/session']) {
    const res = await k.get(path);
    t.equal(res.headers['strict-transport-security'], 'max-age=600; preload', `${path}: HSTS`);
  }
});

t.test('the redirect listener answers 308 to HTTPS and serves nothing', async (t) => {
  const k = await startKeyhole(baseYaml(providers).replace('admin:', '  redirectHttp: { host: 127.0.0.1, port: 0 }\nadmin:'));
  t.teardown(() => k.close());
  const where = (k.server as unknown as { redirect: import('node:http').Server }).redirect.address() as import('node:net').AddressInfo;
  const dataPort = new URL(k.base).port;
  const get = (path: string, host: string) =>
    new Promise<{ status: number; location: string | undefined; hsts: string | undefined }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: where.port, path, headers: { host } }, (res) => {
        res.resume();
        resolve({ status: res.statusCode!, location: res.headers.location, hsts: res.headers['strict-transport-security'] as string | undefined });
      });
      req.on('error', reject);
      req.end();
    });
  const r = await get('/v1/data?uri=local%3A%2F%2Ffiles%2Fa&x=1', 'localhost:8080');
  t.equal(r.status, 308);
  t.equal(r.location, `https://localhost:${dataPort}/v1/data?uri=local%3A%2F%2Ffiles%2Fa&x=1`);
  t.equal(r.hsts, undefined, 'no HSTS over plain HTTP');
  const evil = await get('/x', 'evil.example"><script>');
  t.equal(evil.status, 400, 'a malformed Host is refused');
  t.equal(evil.location, undefined, 'and never reflected');
  for (const host of ['evil.example', 'evil.example:443', 'localhost.evil.example', '10.0.0.1']) {
    const open = await get('/x', host);
    t.same([open.status, open.location], [400, undefined], `Host ${host}: the certificate does not name it, no redirect (not an open redirect)`);
  }
  const ip = await get('/x', '127.0.0.1:80');
  t.equal(ip.location, `https://127.0.0.1:${dataPort}/x`, 'an address the certificate names');
});

t.test('publicUrl is the redirect target', async (t) => {
  const k = await startKeyhole(baseYaml(providers).replace('admin:', '  redirectHttp: { host: 127.0.0.1, port: 0 }\n  publicUrl: https://data.example.org\nadmin:'));
  t.teardown(() => k.close());
  const where = (k.server as unknown as { redirect: import('node:http').Server }).redirect.address() as import('node:net').AddressInfo;
  const location = await new Promise<string | undefined>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: where.port, path: '/a?b' }, (res) => {
      res.resume();
      resolve(res.headers.location);
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(location, 'https://data.example.org/a?b');
});

t.test('ensureDevCerts keeps an existing set unless forced', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-devca-'));
  const first = await ensureDevCerts(dir);
  t.ok(first.created);
  const ca = readFileSync(first.files.caCert, 'utf8');
  t.notOk((await ensureDevCerts(dir)).created);
  t.equal(readFileSync(first.files.caCert, 'utf8'), ca);
  t.ok((await ensureDevCerts(dir, { force: true })).created);
  t.not(readFileSync(first.files.caCert, 'utf8'), ca);
  const server = new X509Certificate(readFileSync(first.files.serverCert));
  t.ok(server.checkHost('localhost') && server.checkIP('127.0.0.1'), 'server cert valid for localhost and 127.0.0.1');
  t.notOk(server.ca);
});
