// CORS on the data route: exact-origin allowlist, credentials only for listed origins,
// preflight with max-age, exposed headers for media players; only GET, HEAD, OPTIONS.
import t from 'tap';
import { auditFor, baseYaml, dataUrl, filesProviderYaml, startKeyhole, tempFiles } from '../helpers/keyhole.ts';
import { ConfigError, parseConfig } from '../../src/config/load.ts';

const root = tempFiles('cors');
const yaml = baseYaml(`cors: { origins: ["https://app.example", "http://localhost:8080"], maxAge: 1234 }\n${filesProviderYaml(root)}`);

t.test('exact-origin allowlist and exposed headers', async (t) => {
  const k = await startKeyhole(yaml);
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['local://files/'] });
  const get = (origin?: string) => k.get(dataUrl('local://files/a.txt'), { authorization: `Bearer ${token}`, ...(origin ? { origin } : {}) });
  const listed = await get('https://app.example');
  t.equal(listed.status, 200);
  t.equal(listed.headers['access-control-allow-origin'], 'https://app.example');
  t.equal(listed.headers['access-control-allow-credentials'], 'true');
  const exposed = String(listed.headers['access-control-expose-headers']).toLowerCase().split(/,\s*/);
  for (const h of ['content-length', 'content-range', 'accept-ranges', 'content-type', 'etag', 'x-request-id']) t.ok(exposed.includes(h), `exposes ${h}`);
  t.equal(listed.headers.vary, 'Origin');
  for (const origin of ['https://evil.example', 'https://app.example.evil', 'https://APP.example', 'http://app.example', 'https://app.example:443', 'null']) {
    const res = await get(origin);
    t.equal(res.headers['access-control-allow-origin'], undefined, `${origin}: not allowed`);
    t.equal(res.headers['access-control-allow-credentials'], undefined);
  }
  t.equal((await get('http://localhost:8080')).headers['access-control-allow-origin'], 'http://localhost:8080');
  t.equal((await get('https://evil.example')).headers.vary, 'Origin', 'an unlisted origin gets Vary too: a cache must not reuse it for a listed one');
});

t.test('without listed origins no answer varies by Origin', async (t) => {
  const k = await startKeyhole(yaml.replace(/cors: .*\n/, ''));
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['local://files/'] });
  const res = await k.get(dataUrl('local://files/a.txt'), { authorization: `Bearer ${token}`, origin: 'https://app.example' });
  t.equal(res.status, 200);
  t.equal(res.headers['access-control-allow-origin'], undefined);
  t.equal(res.headers.vary, undefined);
});

t.test('preflight', async (t) => {
  const k = await startKeyhole(yaml);
  t.teardown(() => k.close());
  const pre = await k.get(dataUrl('local://files/a.txt'), { origin: 'https://app.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'range' }, 'OPTIONS');
  t.equal(pre.status, 204);
  t.equal(pre.headers['access-control-allow-origin'], 'https://app.example');
  t.equal(pre.headers['access-control-max-age'], '1234');
  t.equal(pre.headers['access-control-allow-methods'], 'GET, HEAD, OPTIONS');
  t.match(String(pre.headers['access-control-allow-headers']), /Range/);
  t.match(String(pre.headers['access-control-allow-headers']), /Authorization/);
  const bad = await k.get(dataUrl('local://files/a.txt'), { origin: 'https://evil.example', 'access-control-request-method': 'GET' }, 'OPTIONS');
  t.equal(bad.status, 403);
  t.equal(bad.headers['access-control-allow-origin'], undefined);
  t.equal(JSON.parse(bad.body.toString()).error, 'cors_origin');
});

t.test('data routes answer 405 with Allow to anything but GET, HEAD, OPTIONS', async (t) => {
  const k = await startKeyhole(yaml);
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['local://files/'] });
  for (const method of ['POST', 'PUT', 'DELETE'] as const) {
    const res = await k.get(dataUrl('local://files/a.txt'), { authorization: `Bearer ${token}` }, method, method === 'DELETE' ? undefined : 'x');
    t.equal(res.status, 405, method);
    t.equal(res.headers.allow, 'GET, HEAD, OPTIONS');
    t.equal(JSON.parse(res.body.toString()).error, 'method_not_allowed');
    t.match(await auditFor(k, res.headers['x-request-id'] as string), { reason: 'method_not_allowed', decision: 'deny' });
  }
  const head = await k.get(dataUrl('local://files/a.txt'), { authorization: `Bearer ${token}` }, 'HEAD');
  t.equal(head.status, 200);
  t.equal(head.headers['content-length'], '5');
  t.equal(head.body.length, 0);
  const unknown = await k.get('/v1/other');
  t.equal(unknown.status, 404);
  t.equal(JSON.parse(unknown.body.toString()).error, 'route_not_found');
});

t.test('an origin with a path is refused in config', async (t) => {
  const err = (() => {
    try {
      parseConfig(yaml.replace('"https://app.example"', '"https://app.example/x"'), { env: { KEYHOLE_TEST_SECRET: 'x'.repeat(40), KEYHOLE_TEST_ADMIN: 'a' } });
    } catch (e) {
      return e;
    }
  })();
  t.ok(err instanceof ConfigError);
  t.match((err as ConfigError).problems, [{ path: 'cors.origins[0]', message: /exact origin/ }]);
});
