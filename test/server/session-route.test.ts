// POST /v1/session turns a token into the __Host- cookie (Secure, HttpOnly, SameSite from
// config); the cookie then authenticates data requests; DELETE clears it.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { testCerts } from '../helpers/certs.ts';
import { auditFor, baseYaml, dataUrl, filesProviderYaml, startKeyhole, tempFiles } from '../helpers/keyhole.ts';

const root = tempFiles('session');

const yaml = baseYaml(`cors: { origins: ["https://app.example"] }\n${filesProviderYaml(root)}`, { auth: 'cookie: { sameSite: Strict }' });

t.test('session cookie: set by POST, used by data requests, cleared by DELETE', async (t) => {
  const k = await startKeyhole(yaml);
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['local://files/'] });

  const set = await k.get('/v1/session', { authorization: `Bearer ${token}` }, 'POST');
  t.equal(set.status, 204);
  const cookie = String(set.headers['set-cookie']);
  t.match(cookie, new RegExp(`^__Host-keyhole=${token.replace(/[.-]/g, '\\$&')};`));
  for (const attr of ['Path=/', 'Secure', 'HttpOnly', 'SameSite=Strict']) t.ok(cookie.split('; ').includes(attr), attr);
  t.notMatch(cookie, /Domain=/i, '__Host- cookies carry no Domain');
  const maxAge = Number(/Max-Age=(\d+)/.exec(cookie)![1]);
  t.ok(maxAge > 3500 && maxAge <= 3600, 'cookie lives as long as the token');
  t.equal(set.headers['cache-control'], 'no-store');

  const viaBody = await k.get('/v1/session', { 'content-type': 'application/json' }, 'POST', JSON.stringify({ token }));
  t.equal(viaBody.status, 204, 'token in a JSON body works too');

  const data = await k.get(dataUrl('local://files/a.txt'), { cookie: `other=1; __Host-keyhole=${token}` });
  t.equal(data.status, 200);
  t.equal(data.body.toString(), 'hello');
  t.match(await auditFor(k, data.headers['x-request-id'] as string), { tokenSource: 'cookie', decision: 'allow' });

  const del = await k.get('/v1/session', {}, 'DELETE');
  t.equal(del.status, 204);
  t.match(String(del.headers['set-cookie']), /^__Host-keyhole=; Path=\/; Secure; HttpOnly; SameSite=Strict; Max-Age=0$/);
  t.notOk(k.rawLogs().includes(token), 'the token never appears in logs');
});

t.test('session route refusals', async (t) => {
  const k = await startKeyhole(yaml);
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['local://files/'] });
  const bad = await k.get('/v1/session', { authorization: 'Bearer abc.def.ghi' }, 'POST');
  t.equal(bad.status, 401);
  t.equal(JSON.parse(bad.body.toString()).error, 'token_malformed');
  t.equal(bad.headers['set-cookie'], undefined, 'no cookie for a bad token');
  const none = await k.get('/v1/session', {}, 'POST');
  t.equal(JSON.parse(none.body.toString()).error, 'token_missing');
  const cross = await k.get('/v1/session', { authorization: `Bearer ${token}`, origin: 'https://evil.example' }, 'POST');
  t.equal(cross.status, 403, 'a cross-site page cannot plant a session');
  t.equal(JSON.parse(cross.body.toString()).error, 'cors_origin');
  const listed = await k.get('/v1/session', { authorization: `Bearer ${token}`, origin: 'https://app.example' }, 'POST');
  t.equal(listed.status, 204);
  t.equal(listed.headers['access-control-allow-origin'], 'https://app.example');
  const same = await k.get('/v1/session', { authorization: `Bearer ${token}`, origin: k.base }, 'POST');
  t.equal(same.status, 204, 'same origin');
  const port = new URL(k.base).port;
  // A made-up Host (DNS rebinding, a raw client) with an Origin to match: TLS to localhost.
  const rebound = await new Promise<{ status: number; cookie: unknown }>((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(testCerts().caCert), method: 'POST', path: '/v1/session', headers: { authorization: `Bearer ${token}`, origin: `https://evil.example:${port}`, host: `evil.example:${port}` } },
      (res) => {
        res.resume();
        resolve({ status: res.statusCode!, cookie: res.headers['set-cookie'] });
      },
    );
    req.on('error', reject);
    req.end();
  });
  t.equal(rebound.status, 403, 'Origin equal to a made-up Host is not our origin (the certificate does not name it)');
  t.equal(rebound.cookie, undefined);
  const get = await k.get('/v1/session');
  t.equal(get.status, 405);
  t.equal(get.headers.allow, 'POST, DELETE, OPTIONS');
  const badJson = await k.get('/v1/session', { 'content-type': 'application/json' }, 'POST', '{nope');
  t.equal(badJson.status, 400);
  const pre = await k.get('/v1/session', { origin: 'https://app.example', 'access-control-request-method': 'POST' }, 'OPTIONS');
  t.equal(pre.status, 204);
  t.equal(pre.headers['access-control-allow-methods'], 'POST, DELETE, OPTIONS');
  const preBad = await k.get('/v1/session', { origin: 'https://evil.example', 'access-control-request-method': 'POST' }, 'OPTIONS');
  t.equal(preBad.status, 403);
});
