// auth.introspect: a data request with no Keyhole token is authorized by asking the app
// (a real loopback app with a Label Studio-like /api/current-user/whoami), with the user's
// own credentials; answers are cached by a hash of those credentials; only the listed
// providers are readable; failures fail closed.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { baseYaml, dataUrl, startKeyhole, type Running } from '../helpers/keyhole.ts';
import { startTestApp, type TestApp } from '../app/test-app.ts';

const SESSIONS: Record<string, { id: number; email: string }> = { 'sessionid=good-session': { id: 42, email: 'ann@example.org' } };
let failNext = 0;

let app: TestApp;
let k: Running;
let otherDir: string;

t.before(async () => {
  otherDir = mkdtempSync(join(tmpdir(), 'keyhole-intro-'));
  writeFileSync(join(otherDir, 'secret.txt'), 'not for introspected sessions');
  app = await startTestApp({
    '/api/current-user/whoami': (req, res) => {
      if (failNext > 0) {
        failNext--;
        res.writeHead(500).end('boom');
        return;
      }
      const user = SESSIONS[req.headers.cookie ?? ''] ?? (req.headers.authorization === 'Token ls-api-token' ? { id: 7, email: 'bot@example.org' } : undefined);
      if (!user) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"detail":"Authentication credentials were not provided."}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(user));
    },
  });
  k = await startKeyhole(
    baseYaml(`providers:
  - { name: samples, kind: local, match: "local://samples/", root: ${process.cwd()}/samples }
  - { name: other, kind: local, match: "local://other/", root: ${otherDir} }
  - { name: orgonly, kind: local, match: "local://orgonly/", root: ${otherDir}, orgs: [acme] }
`).replace(
      'auth:\n',
      `auth:
  introspect:
    url: ${app.origin}/api/current-user/whoami
    forward: [cookie, authorization]
    cacheTtl: 60s
    providers: [samples, orgonly]
`,
    ),
  );
});
t.teardown(async () => {
  await k.close();
  await app.close();
  rmSync(otherDir, { recursive: true, force: true });
});

const whoamiCalls = () => app.requests.filter((r) => r.url === '/api/current-user/whoami').length;

t.test('the app vouches for the user: listed providers only', async (t) => {
  const before = whoamiCalls();
  const res = await k.get(dataUrl('local://samples/hello.txt'), { cookie: 'sessionid=good-session' });
  t.equal(res.status, 200, 'a logged-in app user reads a listed provider');
  t.equal(whoamiCalls(), before + 1, 'the app was asked once');
  const asked = app.requests.filter((r) => r.url === '/api/current-user/whoami').at(-1)!;
  t.equal(asked.headers.cookie, 'sessionid=good-session', "the user's own cookie was forwarded");
  t.equal(asked.headers.authorization, undefined, 'only headers the request had');

  const again = await k.get(dataUrl('local://samples/gradient.png'), { cookie: 'sessionid=good-session' });
  t.equal(again.status, 200);
  t.equal(whoamiCalls(), before + 1, 'the second request used the cached answer');

  const other = await k.get(dataUrl('local://other/secret.txt'), { cookie: 'sessionid=good-session' });
  t.equal(other.status, 403, 'a provider not listed for introspected sessions is refused');
  t.equal(JSON.parse(other.body.toString()).error, 'introspect_provider');

  const orgOnly = await k.get(dataUrl('local://orgonly/secret.txt'), { cookie: 'sessionid=good-session' });
  t.equal(orgOnly.status, 403, 'a provider restricted to orgs is refused even when listed: no org claim to show');

  const audit = k.audits().find((a) => a.id === res.headers['x-request-id']);
  t.match(audit, { sub: '42', tokenSource: 'introspect', decision: 'allow' }, 'the audit names the app user (subjectPrefix + id) and the source');
  t.notOk(k.rawLogs().includes('good-session'), 'the forwarded credential never appears in logs');
});

t.test('the authorization header works as a credential too', async (t) => {
  const res = await k.get(dataUrl('local://samples/hello.txt'), { authorization: 'Token ls-api-token' });
  t.equal(res.status, 200);
});

t.test('the app does not know the user: 401, cached briefly', async (t) => {
  const before = whoamiCalls();
  const res = await k.get(dataUrl('local://samples/hello.txt'), { cookie: 'sessionid=stolen-or-expired' });
  t.equal(res.status, 401);
  t.equal(JSON.parse(res.body.toString()).error, 'introspect_denied');
  await k.get(dataUrl('local://samples/hello.txt'), { cookie: 'sessionid=stolen-or-expired' });
  t.equal(whoamiCalls(), before + 1, 'the no is cached too');
});

t.test('no credentials at all: token_missing, the app is not asked', async (t) => {
  const before = whoamiCalls();
  const res = await k.get(dataUrl('local://samples/hello.txt'));
  t.equal(res.status, 401);
  t.equal(JSON.parse(res.body.toString()).error, 'token_missing');
  t.equal(whoamiCalls(), before);
});

t.test('a Keyhole token, even a bad one, is never overridden by introspection', async (t) => {
  const before = whoamiCalls();
  const res = await k.get(dataUrl('local://samples/hello.txt', 'not.a.jwt'), { cookie: 'sessionid=good-session' });
  t.equal(res.status, 401, 'a bad token stays a bad token');
  t.equal(whoamiCalls(), before);
  const token = await k.token({ scope: ['local://other/'] });
  const ok = await k.get(dataUrl('local://other/secret.txt'), { authorization: `Bearer ${token}` });
  t.equal(ok.status, 200, 'tokens keep their own scope');
});

t.test('the app failing: 503, fail closed, not cached', async (t) => {
  failNext = 1;
  const res = await k.get(dataUrl('local://samples/hello.txt'), { cookie: 'sessionid=first-try' });
  t.equal(res.status, 503);
  t.equal(JSON.parse(res.body.toString()).error, 'introspect_unavailable');
  SESSIONS['sessionid=first-try'] = { id: 9, email: 'x@example.org' };
  const retry = await k.get(dataUrl('local://samples/hello.txt'), { cookie: 'sessionid=first-try' });
  t.equal(retry.status, 200, 'the failure was not cached');
});

t.test('concurrent requests with the same credentials ask the app once', async (t) => {
  SESSIONS['sessionid=burst'] = { id: 10, email: 'b@example.org' };
  const before = whoamiCalls();
  const all = await Promise.all(Array.from({ length: 8 }, () => k.get(dataUrl('local://samples/hello.txt'), { cookie: 'sessionid=burst' })));
  t.same(
    all.map((r) => r.status),
    Array(8).fill(200),
  );
  t.equal(whoamiCalls(), before + 1);
});

t.test('config: introspect needs a URL and at least one provider', async (t) => {
  const yaml = baseYaml(`providers:
  - { name: samples, kind: local, match: "local://samples/", root: ${process.cwd()}/samples }
`).replace('auth:\n', 'auth:\n  introspect: { url: "not a url", providers: [] }\n');
  const err = await startKeyhole(yaml).then(
    () => undefined,
    (e: unknown) => e as { problems?: { path: string }[] },
  );
  const paths = (err?.problems ?? []).map((p) => p.path);
  t.ok(paths.some((p) => p.startsWith('auth.introspect.url')), `url problem reported (${paths.join(', ')})`);
  const noProviders = await startKeyhole(yaml.replace('"not a url"', 'https://app.example/whoami')).then(
    () => undefined,
    (e: unknown) => e as { problems?: { path: string }[] },
  );
  t.ok((noProviders?.problems ?? []).some((p) => p.path.startsWith('auth.introspect.providers')), 'providers problem reported');
});
