// The http provider through a real Keyhole and real loopback upstreams: path joining that
// never climbs out of the base path, injected credentials (basic, bearer, named header)
// replacing whatever the client sent, and mTLS to an upstream that demands a client cert.
import t, { type Test as Tap } from 'tap';
import { startUpstream, type UpstreamOptions } from '../helpers/upstream.js';
import { testCerts } from '../helpers/certs.js';
import { auditFor, baseYaml, dataUrl, startKeyhole } from '../helpers/keyhole.js';

async function pair(t: Tap, upstream: UpstreamOptions, provider: string, env: Record<string, string> = {}) {
  const up = await startUpstream(upstream);
  t.teardown(() => up.close());
  const k = await startKeyhole(
    baseYaml(`providers:
  - name: corp
    kind: http
    match: https://data.corp/
    allowPrivateNetworks: true
${provider.replaceAll('ORIGIN', up.origin).replace(/^/gm, '    ')}
`),
    { env },
  );
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['https://data.corp/'] });
  return { up, k, token, get: (uri: string, h: Record<string, string> = {}) => k.get(dataUrl(uri), { authorization: `Bearer ${token}`, ...h }) };
}

t.test('path joining stays under the base path', async (t) => {
  const objects = { '/base/dir/a b.txt': { body: 'spaced' }, '/base/dir/q?x.txt': { body: 'question' }, '/base/x.txt': { body: 'x' }, '/secret.txt': { body: 'S' } };
  const { up, get } = await pair(t, { objects }, 'baseUrl: ORIGIN/base/');
  t.equal((await get('https://data.corp/dir/a%20b.txt')).body.toString(), 'spaced');
  t.equal(up.log.at(-1)!.url, '/base/dir/a%20b.txt');
  t.equal((await get('https://data.corp/dir/q%3Fx.txt')).body.toString(), 'question', 'an encoded ? stays in the path');
  t.equal(up.log.at(-1)!.url, '/base/dir/q%3Fx.txt');
  t.equal((await get("https://data.corp/dir/it's(1)*.txt")).status, 404);
  t.equal(up.log.at(-1)!.url, '/base/dir/it%27s%281%29%2A.txt', 'sub-delims are encoded');
  const before = up.log.length;
  for (const uri of ['https://data.corp/../secret.txt', 'https://data.corp/%2e%2e/secret.txt', 'https://data.corp/dir%2f..%2f..%2fsecret.txt', 'https://data.corp/..%5csecret.txt']) {
    const res = await get(uri);
    t.equal(res.status, 400, `${uri} refused`);
  }
  t.equal(up.log.length, before, 'no traversal attempt reached the upstream');
  t.ok(up.log.every((r) => r.url.startsWith('/base/')), 'every upstream path is under /base/');
});

t.test('a base URL without a trailing slash is still a folder', async (t) => {
  const { up, get } = await pair(t, { objects: { '/base/x.txt': { body: 'x' } } }, 'baseUrl: ORIGIN/base');
  t.equal((await get('https://data.corp/x.txt')).status, 200);
  t.equal(up.log[0]!.url, '/base/x.txt');
});

t.test('bearer credential replaces the client Authorization', async (t) => {
  const { up, get, token } = await pair(
    t,
    { demand: { header: 'authorization', value: 'Bearer upstream-token' }, objects: { '/o.txt': { body: 'ok' } } },
    'baseUrl: ORIGIN/\nauth: { type: bearer, token: "${env:UP_TOKEN}" }',
    { UP_TOKEN: 'upstream-token' },
  );
  const res = await get('https://data.corp/o.txt');
  t.equal(res.status, 200);
  t.equal(up.log[0]!.headers.authorization, 'Bearer upstream-token');
  t.notOk(JSON.stringify(up.log).includes(token), 'the session token never reaches the upstream');
});

t.test('named header credential: an incoming header of that name is removed', async (t) => {
  const { up, get, k } = await pair(
    t,
    { demand: { header: 'x-api-key', value: 'real-key' }, objects: { '/o.txt': { body: 'ok' } } },
    'baseUrl: ORIGIN/\nauth: { type: header, name: X-Api-Key, value: "${env:UP_KEY}" }',
    { UP_KEY: 'real-key' },
  );
  const res = await get('https://data.corp/o.txt', { 'x-api-key': 'attacker-key', 'X-API-KEY': 'attacker-2' } as Record<string, string>);
  t.equal(res.status, 200);
  t.equal(up.log[0]!.headers['x-api-key'], 'real-key', 'only the configured value');
  t.equal(up.log[0]!.headers.authorization, undefined, 'no Authorization forwarded');
  t.notOk(k.rawLogs().includes('real-key'), 'the credential is not logged');
});

t.test('no credential: nothing of the client authorization is forwarded', async (t) => {
  const { up, get } = await pair(t, { objects: { '/o.txt': { body: 'ok' } } }, 'baseUrl: ORIGIN/');
  t.equal((await get('https://data.corp/o.txt', { cookie: 'a=b' })).status, 200);
  t.equal(up.log[0]!.headers.authorization, undefined);
  t.equal(up.log[0]!.headers.cookie, undefined);
});

t.test('wrong upstream credential: 502 upstream_status, upstream body withheld', async (t) => {
  const { get } = await pair(
    t,
    { demand: { header: 'authorization', value: 'Basic x' }, objects: { '/o.txt': { body: 'ok' } } },
    'baseUrl: ORIGIN/\nauth: { type: basic, username: u, password: "${env:UP_PASS}" }',
    { UP_PASS: 'wrong' },
  );
  const res = await get('https://data.corp/o.txt');
  t.equal(res.status, 502);
  const body = JSON.parse(res.body.toString());
  t.equal(body.error, 'upstream_status');
  t.notOk(res.body.toString().includes('upstream says'), 'the upstream error body stays inside');
  t.equal(res.headers['www-authenticate'], undefined, "the upstream's challenge is not relayed");
});

t.test('mTLS to an HTTPS upstream that demands a client certificate from the dev CA', async (t) => {
  const c = testCerts();
  const tlsUp = { cert: c.serverCert, key: c.serverKey, ca: c.caCert, requireClientCert: true };
  const objects = { '/o.txt': { body: 'over mtls' } };

  const ok = await pair(t, { tls: tlsUp, objects }, `baseUrl: https://localhost:PORT/\ntls: { ca: ${c.caCert}, cert: ${c.clientCert}, key: ${c.clientKey} }`.replace('https://localhost:PORT', 'ORIGIN'));
  const res = await ok.get('https://data.corp/o.txt');
  t.equal(res.status, 200);
  t.equal(res.body.toString(), 'over mtls');
  t.equal(ok.up.log[0]!.clientCert, 'keyhole-client', 'the upstream saw our client certificate');

  for (const [name, tls] of [
    ['without a client certificate', `tls: { ca: ${c.caCert} }`],
    ['with a certificate from another CA', `tls: { ca: ${c.caCert}, cert: ${c.otherClientCert}, key: ${c.otherClientKey} }`],
    ['without trusting the upstream CA', `tls: { cert: ${c.clientCert}, key: ${c.clientKey} }`],
  ]) {
    const bad = await pair(t, { tls: tlsUp, objects }, `baseUrl: ORIGIN/\n${tls}`);
    const r = await bad.get('https://data.corp/o.txt');
    t.equal(r.status, 502, `${name}: 502`);
    const body = JSON.parse(r.body.toString());
    t.equal(body.error, 'upstream_error', `${name}: reason`);
    t.equal(body.requestId, r.headers['x-request-id']);
    t.notOk(r.body.toString().includes(String(bad.up.port)), `${name}: no upstream address in the body`);
    const audit = await auditFor(bad.k, body.requestId);
    t.match(audit, { decision: 'error', reason: 'upstream_error', status: 502, provider: 'corp' });
    t.type(audit.detail, 'string', `${name}: the detail is in the log`);
  }
});
