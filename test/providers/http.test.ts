// The http provider through a real Keyhole and real loopback upstreams: path joining that
// never climbs out of the base path, injected credentials (basic, bearer, named header)
// replacing whatever the client sent, and mTLS to an upstream that demands a client cert.
import t from 'tap';
import { CORP, upstreamBehindKeyhole as pair, type UpstreamOptions } from '../helpers/upstream.ts';
import { testCerts } from '../helpers/certs.ts';
import { auditFor } from '../helpers/keyhole.ts';
import { injectedCredential } from '../../src/providers/http.ts';
import { Secret } from '../../src/config/secret.ts';

t.test('path joining stays under the base path', async (t) => {
  const objects = { '/base/dir/a b.txt': { body: 'spaced' }, '/base/dir/q?x.txt': { body: 'question' }, '/base/x.txt': { body: 'x' }, '/secret.txt': { body: 'S' } };
  const { up, get } = await pair(t, { objects }, { path: '/base/' });
  t.equal((await get('dir/a%20b.txt')).body.toString(), 'spaced');
  t.equal(up.log.at(-1)!.url, '/base/dir/a%20b.txt');
  t.equal((await get('dir/q%3Fx.txt')).body.toString(), 'question', 'an encoded ? stays in the path');
  t.equal(up.log.at(-1)!.url, '/base/dir/q%3Fx.txt');
  t.equal((await get("dir/it's(1)*.txt")).status, 404);
  t.equal(up.log.at(-1)!.url, '/base/dir/it%27s%281%29%2A.txt', 'sub-delims are encoded');
  const before = up.log.length;
  for (const path of ['../secret.txt', '%2e%2e/secret.txt', 'dir%2f..%2f..%2fsecret.txt', '..%5csecret.txt']) {
    const res = await get(path);
    t.equal(res.status, 400, `${CORP}${path} refused`);
  }
  t.equal(up.log.length, before, 'no traversal attempt reached the upstream');
  t.ok(up.log.every((r) => r.url.startsWith('/base/')), 'every upstream path is under /base/');
});

t.test('a base URL without a trailing slash is still a folder', async (t) => {
  const { up, get } = await pair(t, { objects: { '/base/x.txt': { body: 'x' } } }, { path: '/base' });
  t.equal((await get('x.txt')).status, 200);
  t.equal(up.log[0]!.url, '/base/x.txt');
});

t.test('bearer credential replaces the client Authorization', async (t) => {
  const { up, get, token } = await pair(
    t,
    { demand: { header: 'authorization', value: 'Bearer upstream-token' }, objects: { '/o.txt': { body: 'ok' } } },
    { extra: 'auth: { type: bearer, token: "${env:UP_TOKEN}" }', env: { UP_TOKEN: 'upstream-token' } },
  );
  const res = await get('o.txt');
  t.equal(res.status, 200);
  t.equal(up.log[0]!.headers.authorization, 'Bearer upstream-token');
  t.notOk(JSON.stringify(up.log).includes(token), 'the session token never reaches the upstream');
});

t.test('named header credential: an incoming header of that name is removed', async (t) => {
  const { up, get, k } = await pair(
    t,
    { demand: { header: 'x-api-key', value: 'real-key' }, objects: { '/o.txt': { body: 'ok' } } },
    { extra: 'auth: { type: header, name: X-Api-Key, value: "${env:UP_KEY}" }', env: { UP_KEY: 'real-key' } },
  );
  const res = await get('o.txt', { 'x-api-key': 'attacker-key', 'X-API-KEY': 'attacker-2' } as Record<string, string>);
  t.equal(res.status, 200);
  t.equal(up.log[0]!.headers['x-api-key'], 'real-key', 'only the configured value');
  t.equal(up.log[0]!.headers.authorization, undefined, 'no Authorization forwarded');
  t.notOk(k.rawLogs().includes('real-key'), 'the credential is not logged');
});

t.test('no credential: nothing of the client authorization is forwarded', async (t) => {
  const { up, get } = await pair(t, { objects: { '/o.txt': { body: 'ok' } } });
  t.equal((await get('o.txt', { cookie: 'a=b' })).status, 200);
  t.equal(up.log[0]!.headers.authorization, undefined);
  t.equal(up.log[0]!.headers.cookie, undefined);
});

t.test('wrong upstream credential: 502 upstream_status, upstream body withheld', async (t) => {
  const { get } = await pair(
    t,
    { demand: { header: 'authorization', value: 'Basic x' }, objects: { '/o.txt': { body: 'ok' } } },
    { extra: 'auth: { type: basic, username: u, password: "${env:UP_PASS}" }', env: { UP_PASS: 'wrong' } },
  );
  const res = await get('o.txt');
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

  const ok = await pair(t, { tls: tlsUp, objects }, { extra: `tls: { ca: ${c.caCert}, cert: ${c.clientCert}, key: ${c.clientKey} }` });
  const res = await ok.get('o.txt');
  t.equal(res.status, 200);
  t.equal(res.body.toString(), 'over mtls');
  t.equal(ok.up.log[0]!.clientCert, 'keyhole-client', 'the upstream saw our client certificate');

  for (const [name, tls] of [
    ['without a client certificate', `tls: { ca: ${c.caCert} }`],
    ['with a certificate from another CA', `tls: { ca: ${c.caCert}, cert: ${c.otherClientCert}, key: ${c.otherClientKey} }`],
    ['without trusting the upstream CA', `tls: { cert: ${c.clientCert}, key: ${c.clientKey} }`],
  ]) {
    const bad = await pair(t, { tls: tlsUp, objects }, { extra: tls });
    const r = await bad.get('o.txt');
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

t.test('the secrets the relay watches for, per auth type, built once per provider', async (t) => {
  const secret = (v: string) => new Secret(v, 'env:TEST');
  const texts = (auth: Parameters<typeof injectedCredential>[0]) => injectedCredential(auth).secrets?.needles.map((n) => n.toString()) ?? [];
  t.equal(injectedCredential({ type: 'none' }).secrets, undefined, 'no credential: nothing to search, no cost');

  const long = injectedCredential({ type: 'basic', username: 'svc', password: secret('correct horse') });
  t.equal(long.headers.authorization, `Basic ${Buffer.from('svc:correct horse').toString('base64')}`);
  const longNeedles = texts({ type: 'basic', username: 'svc', password: secret('correct horse') });
  t.ok(longNeedles.includes(Buffer.from('svc:correct horse').toString('base64')), 'basic: the base64');
  t.ok(longNeedles.includes('correct horse'), 'basic: a password of 8 bytes or more on its own');
  t.ok(longNeedles.includes('correct%20horse'), 'and as an echo page would percent-encode it');
  t.notOk(longNeedles.includes('svc:correct horse'), '`user:password` holds the password: found through it');

  const short = texts({ type: 'basic', username: 'svc', password: secret('pw1') });
  t.ok(short.includes('svc:pw1'), 'a short password: `user:password`');
  t.notOk(short.includes('pw1'), 'not the short password alone (it would turn up in ordinary bytes)');

  t.same(texts({ type: 'bearer', token: secret('tok-0123456789') }), ['tok-0123456789'], 'bearer: the token (the header value holds it)');
  const header = injectedCredential({ type: 'header', name: 'X-Api-Key', value: secret('k/ey+1=') });
  t.equal(header.headers['x-api-key'], 'k/ey+1=');
  t.same(
    header.secrets!.needles.map((n) => n.toString()).sort(),
    ['k/ey+1=', 'k%2Fey%2B1%3D', 'k/ey%2B1%3D', 'k\\/ey+1='].sort(),
    'header: the value, percent-encoded three ways (two agree here), JSON with escaped slashes',
  );
});

t.test('an upstream echoing the injected bearer token or header value: refused or cut, audited', async (t) => {
  const echo: UpstreamOptions['override'] = (req, res) => {
    const value = String(req.headers.authorization ?? req.headers['x-api-key']);
    if (req.url === '/in-header') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-disposition': `attachment; filename="${value}"`, 'content-length': 2 });
      res.end('ok');
      return true;
    }
    if (req.url === '/in-body') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`{"filler":"${'.'.repeat(50_000)}","echo":"${value.slice(0, 5)}`);
      setTimeout(() => res.end(`${value.slice(5)}"}`), 30);
      return true;
    }
    return false;
  };
  for (const [kind, provider, env, value] of [
    ['bearer', 'auth: { type: bearer, token: "${env:UP_TOKEN}" }', { UP_TOKEN: 'upstream-token-0123' }, 'upstream-token-0123'],
    ['header', 'auth: { type: header, name: X-Api-Key, value: "${env:UP_KEY}" }', { UP_KEY: 'api-key-abcdef-4567' }, 'api-key-abcdef-4567'],
  ] as const) {
    const { get, k } = await pair(t, { override: echo }, { extra: provider, env });
    const inHeader = await get('in-header');
    t.equal(inHeader.status, 502, `${kind} in a header: 502`);
    t.equal(JSON.parse(inHeader.body.toString()).error, 'upstream_credential_echo');
    t.notOk(JSON.stringify(inHeader.headers).includes(value), `${kind}: not in the relayed headers`);
    t.match(await auditFor(k, inHeader.headers['x-request-id'] as string), { reason: 'upstream_credential_echo', status: 502 });
    const inBody = await get('in-body').then(
      (r) => ({ cut: false, body: r.body, status: r.status }),
      () => ({ cut: true, body: Buffer.alloc(0), status: 200 }),
    );
    t.ok(inBody.cut || inBody.status === 502, `${kind} in the body: cut or refused`);
    t.notOk(inBody.body.includes(value.slice(0, 5)), `${kind}: not even its first bytes`);
    t.notOk(k.rawLogs().includes(value), `${kind}: the credential is never logged`);
    let audits = k.audits().filter((a) => a.uri === 'https://data.corp/in-body');
    for (let i = 0; i < 200 && audits.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      audits = k.audits().filter((a) => a.uri === 'https://data.corp/in-body');
    }
    t.equal(audits.length, 1);
    t.match(audits[0], { reason: 'upstream_credential_echo', decision: 'error' });
  }
});
