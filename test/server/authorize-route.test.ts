// /v1/authorize asked directly, as a data plane asks it: the original request in headers, the
// client's own headers as they came. The same checks as /v1/data, an allow answer with the
// upstream URL and credential, refusals with /v1/data's reasons, one audit event each.
import t from 'tap';
import { request } from 'undici';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { testCerts } from '../helpers/certs.ts';
import { auditFor, dataUrl } from '../helpers/keyhole.ts';
import { authorizerKeyhole, BASIC, SECRETS, UP_TOKEN } from '../helpers/authorizer.ts';
import { originalRequest } from '../../src/server/authorize-route.ts';

const ask = (s: Awaited<ReturnType<typeof authorizerKeyhole>>, headers: Record<string, string>) => s.k.get('/v1/authorize', headers);
const original = (uri: string, token?: string, method = 'GET') => ({ 'x-original-uri': dataUrl(uri, token), 'x-original-method': method });

t.test('allow: the upstream URL and its BasicAuth, the data plane request id, one audit event; Keyhole never calls the upstream', async (t) => {
  const s = await authorizerKeyhole(t);
  const res = await ask(s, { ...original('https://data.corp/cat.jpg'), authorization: `Bearer ${s.token}`, 'x-request-id': 'nginx-0123456789abcdef', 'x-forwarded-for': '203.0.113.9, 127.0.0.1' });
  t.equal(res.status, 200);
  t.equal(res.body.length, 0);
  t.equal(res.headers['x-keyhole-upstream'], `${s.up.origin}/files/cat.jpg`);
  t.equal(res.headers['x-keyhole-upstream-scheme'], 'http');
  t.equal(res.headers['x-keyhole-upstream-host'], `127.0.0.1:${s.up.port}`);
  t.equal(res.headers['x-keyhole-upstream-dial'], `127.0.0.1:${s.up.port}`);
  t.equal(res.headers['x-keyhole-upstream-path'], '/files/cat.jpg');
  t.equal(res.headers['x-keyhole-authorization'], BASIC);
  t.equal(res.headers['x-keyhole-provider'], 'corp');
  t.equal(res.headers['x-request-id'], 'nginx-0123456789abcdef', 'the data plane id is taken');
  t.equal(res.headers['cache-control'], 'no-store');
  t.equal(s.up.log.length, 0, 'the data plane calls the upstream, not Keyhole');
  const audit = await auditFor(s.k, 'nginx-0123456789abcdef');
  t.match(audit, { kind: 'authorize', sub: 'alice', jti: 'tok-1', provider: 'corp', uri: 'https://data.corp/cat.jpg', decision: 'allow', reason: 'ok', status: 200, bytes: 0, client: '127.0.0.1', tokenSource: 'header' });
  t.equal(s.k.audits().filter((a) => a.id === 'nginx-0123456789abcdef').length, 1, 'one event per decision');
  for (const secret of SECRETS) t.notOk(s.k.rawLogs().includes(secret), 'no form of the upstream credential is logged');
});

t.test('Caddy forward_auth form: X-Forwarded-Method/-Uri, a token in the query, a bearer provider; the client address from the last X-Forwarded-For', async (t) => {
  const s = await authorizerKeyhole(t);
  const res = await ask(s, { 'x-forwarded-uri': dataUrl('https://bearer.corp/dir/a b.txt', s.token), 'x-forwarded-method': 'HEAD', 'x-forwarded-for': '198.51.100.7' });
  t.equal(res.status, 200);
  t.equal(res.headers['x-keyhole-upstream'], `${s.up.origin}/b/dir/a%20b.txt`, 'segments encoded, under the base path');
  t.equal(res.headers['x-keyhole-upstream-path'], '/b/dir/a b.txt', 'the path decoded, for data planes that encode it themselves');
  t.equal(res.headers['x-keyhole-authorization'], `Bearer ${UP_TOKEN}`);
  const id = res.headers['x-request-id'] as string;
  t.match(id, /^[0-9a-f-]{36}$/, 'no id given: Keyhole makes one');
  t.match(await auditFor(s.k, id), { kind: 'authorize', provider: 'bearer', decision: 'allow', tokenSource: 'query', client: '198.51.100.7' });
});

t.test('Envoy ext_authz (HTTP) form: the original path after /v1/authorize, the check request\'s own method', async (t) => {
  const s = await authorizerKeyhole(t);
  const path = `/v1/authorize${dataUrl('https://data.corp/cat.jpg')}`;
  const res = await s.k.get(path, { authorization: `Bearer ${s.token}`, 'x-request-id': 'envoy-0123456789abcdef' }, 'HEAD');
  t.equal(res.status, 200, 'routed to the authorizer, not to the app');
  t.equal(res.headers['x-keyhole-upstream'], `${s.up.origin}/files/cat.jpg`);
  t.equal(res.headers['x-keyhole-authorization'], BASIC);
  t.match(await auditFor(s.k, 'envoy-0123456789abcdef'), { kind: 'authorize', decision: 'allow', uri: 'https://data.corp/cat.jpg' });
  const refused = await s.k.get(`/v1/authorize${dataUrl('https://data.corp/cat.jpg')}`, {}, 'GET');
  t.equal(refused.status, 401, 'no token: refused as /v1/data refuses it');
  t.equal(refused.headers['x-keyhole-reason'], 'token_missing');
});

t.test('the session cookie carries the token as on /v1/data', async (t) => {
  const s = await authorizerKeyhole(t);
  const res = await ask(s, { ...original('https://data.corp/cat.jpg'), cookie: `__Host-keyhole=${s.token}` });
  t.equal(res.status, 200);
  t.match(await auditFor(s.k, res.headers['x-request-id'] as string), { tokenSource: 'cookie' });
});

t.test('refusals: the reason, status and JSON body of /v1/data, X-Keyhole-Reason, no upstream or credential; one audit event each', async (t) => {
  const s = await authorizerKeyhole(t);
  const other = await s.k.token({ scope: ['https://elsewhere.corp/'] });
  const cases: [string, Record<string, string>, number, string][] = [
    ['no token', original('https://data.corp/cat.jpg'), 401, 'token_missing'],
    ['bad token', { ...original('https://data.corp/cat.jpg'), authorization: 'Bearer not.a.jwt' }, 401, 'token_malformed'],
    ['out of scope', { ...original('https://data.corp/cat.jpg'), authorization: `Bearer ${other}` }, 403, 'scope_denied'],
    ['no provider', { ...original('https://nobody.corp/x'), authorization: `Bearer ${s.token}` }, 403, 'no_provider'],
    ['traversal', { ...original('https://data.corp/a/../cat.jpg'), authorization: `Bearer ${s.token}` }, 400, 'uri_traversal'],
    ['no uri', { 'x-original-uri': '/v1/data', 'x-original-method': 'GET', authorization: `Bearer ${s.token}` }, 400, 'uri_missing'],
    ['POST original', { ...original('https://data.corp/cat.jpg', undefined, 'POST'), authorization: `Bearer ${s.token}` }, 405, 'method_not_allowed'],
    ['no original request', { authorization: `Bearer ${s.token}` }, 400, 'bad_request'],
    ['two original URIs that differ', { ...original('https://data.corp/cat.jpg'), 'x-forwarded-uri': dataUrl('https://data.corp/other.jpg'), authorization: `Bearer ${s.token}` }, 400, 'bad_request'],
    ['a repeated uri', { 'x-original-uri': `${dataUrl('https://data.corp/cat.jpg')}&uri=x`, 'x-original-method': 'GET', authorization: `Bearer ${s.token}` }, 400, 'bad_request'],
    ['loaded as a script', { ...original('https://data.corp/cat.jpg'), authorization: `Bearer ${s.token}`, 'sec-fetch-dest': 'script' }, 403, 'data_destination_refused'],
    ['local provider', { ...original('local://files/a.txt'), authorization: `Bearer ${s.token}` }, 501, 'authorizer_unsupported'],
    ['custom credential header', { ...original('https://keyed.corp/x.bin'), authorization: `Bearer ${s.token}` }, 501, 'authorizer_unsupported'],
  ];
  for (const [name, headers, status, reason] of cases) {
    const res = await ask(s, headers);
    t.equal(res.status, status, `${name}: status`);
    t.equal(res.headers['x-keyhole-reason'], reason, `${name}: X-Keyhole-Reason`);
    const body = JSON.parse(res.body.toString());
    t.equal(body.error, reason, `${name}: JSON error`);
    t.equal(body.requestId, res.headers['x-request-id'], `${name}: request id`);
    t.equal(res.headers['x-keyhole-upstream'], undefined, `${name}: no upstream`);
    t.equal(res.headers['x-keyhole-authorization'], undefined, `${name}: no credential`);
    if (status === 401) t.equal(res.headers['www-authenticate'], 'Bearer realm="keyhole"', `${name}: WWW-Authenticate`);
    if (status === 405) t.equal(res.headers.allow, 'GET, HEAD', `${name}: Allow`);
    t.match(await auditFor(s.k, res.headers['x-request-id'] as string), { kind: 'authorize', reason, status }, `${name}: audited`);
  }
  const ids = new Set(s.k.audits().map((a) => a.id));
  t.equal(ids.size, s.k.audits().length, 'one audit event per decision');
  t.equal(s.up.log.length, 0);
});

t.test('a repeated X-Original-URI is refused, not joined', async (t) => {
  const s = await authorizerKeyhole(t);
  // node:https sends an array as the field repeated, one line each
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpsRequest(`${s.k.base}/v1/authorize`, { ca: readFileSync(testCerts().caCert), headers: { 'x-original-uri': [dataUrl('https://data.corp/cat.jpg'), dataUrl('https://data.corp/cat.jpg')], 'x-original-method': 'GET', authorization: `Bearer ${s.token}` } }, resolve);
    req.on('error', reject);
    req.end();
  });
  res.resume();
  t.equal(res.statusCode, 400);
  t.equal(res.headers['x-keyhole-reason'], 'bad_request');
});

t.test('revocation takes effect on the next decision', async (t) => {
  const s = await authorizerKeyhole(t);
  const headers = { ...original('https://data.corp/cat.jpg'), authorization: `Bearer ${s.token}` };
  t.equal((await ask(s, headers)).status, 200);
  await s.revoke('tok-1');
  const res = await ask(s, headers);
  t.equal(res.status, 401);
  t.equal(res.headers['x-keyhole-reason'], 'token_revoked');
});

t.test('a peer outside authorizer.peers is refused before anything is read, and its request id is not taken', async (t) => {
  const s = await authorizerKeyhole(t, { peers: ['10.9.9.9'] });
  const res = await ask(s, { ...original('https://data.corp/cat.jpg'), authorization: `Bearer ${s.token}`, 'x-request-id': 'spoofed-0123456789', 'x-forwarded-for': '203.0.113.1' });
  t.equal(res.status, 403);
  t.equal(res.headers['x-keyhole-reason'], 'authorizer_peer');
  t.equal(res.headers['x-keyhole-authorization'], undefined);
  t.not(res.headers['x-request-id'], 'spoofed-0123456789');
  const audit = await auditFor(s.k, res.headers['x-request-id'] as string);
  t.match(audit, { kind: 'authorize', reason: 'authorizer_peer', status: 403, decision: 'deny', client: '127.0.0.1' });
  t.equal(audit.sub, undefined, 'the token was not even read');
});

t.test('without an authorizer section the route does not exist', async (t) => {
  const s = await authorizerKeyhole(t, { off: true });
  const res = await ask(s, { ...original('https://data.corp/cat.jpg'), authorization: `Bearer ${s.token}` });
  t.equal(res.status, 404);
  t.equal(JSON.parse(res.body.toString()).error, 'route_not_found');
  t.equal(res.headers['x-keyhole-authorization'], undefined);
});

t.test('a malformed data plane request id is replaced', async (t) => {
  const s = await authorizerKeyhole(t);
  const res = await ask(s, { ...original('https://data.corp/cat.jpg'), authorization: `Bearer ${s.token}`, 'x-request-id': 'bad id with spaces' });
  t.equal(res.status, 200);
  t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/);
});

t.test('limits apply: a rate refused with 429 and Retry-After; decisions counted in the metrics', async (t) => {
  const s = await authorizerKeyhole(t, { extra: 'limits:\n  rules:\n    - name: annotator\n      rate: { perSecond: 0.5, burst: 2 }\n' });
  const headers = { ...original('https://data.corp/cat.jpg'), authorization: `Bearer ${s.token}` };
  t.equal((await ask(s, headers)).status, 200);
  t.equal((await ask(s, headers)).status, 200);
  const refused = await ask(s, headers);
  t.equal(refused.status, 429);
  t.equal(refused.headers['x-keyhole-reason'], 'rate_limited');
  t.ok(Number(refused.headers['retry-after']) >= 1, 'Retry-After');
  const metrics = await (await request(`${s.k.admin}/metrics`)).body.text();
  t.match(metrics, /keyhole_authorize_decisions_total\{provider="corp",status="200",decision="allow"\} 2\n/);
  t.match(metrics, /keyhole_authorize_decisions_total\{provider="corp",status="429",decision="deny"\} 1\n/);
});

t.test('originalRequest: the conventions, Envoy ext_authz path-prefix form, and what is refused', async (t) => {
  const req = (headers: string[], url = '/v1/authorize', method = 'GET') => ({ rawHeaders: headers, url, method });
  t.same(originalRequest(req(['X-Forwarded-Method', 'HEAD', 'X-Forwarded-Uri', '/v1/data?uri=a'])), { ok: true, method: 'HEAD', uri: '/v1/data?uri=a' });
  t.same(originalRequest(req(['X-Original-Method', 'get', 'X-Original-URI', '/d?uri=a'])), { ok: true, method: 'GET', uri: '/d?uri=a' });
  t.same(originalRequest(req(['X-Original-URI', '/d?uri=a', 'X-Forwarded-Uri', '/d?uri=a', 'X-Original-Method', 'GET'])), { ok: true, method: 'GET', uri: '/d?uri=a' }, 'both conventions, agreeing');
  t.same(originalRequest(req([], '/v1/authorize/v1/data?uri=a', 'HEAD')), { ok: true, method: 'HEAD', uri: '/v1/data?uri=a' }, 'Envoy: the original path after the prefix, its method');
  t.equal(originalRequest(req(['X-Original-URI', '/d?uri=b'], '/v1/authorize/d?uri=a')).ok, false, 'Envoy path and a header that differ');
  t.equal(originalRequest(req(['X-Original-URI', '/d?uri=a'])).ok, false, 'no method');
  t.equal(originalRequest(req(['X-Original-Method', 'GET'])).ok, false, 'no URI');
  t.equal(originalRequest(req(['X-Original-Method', 'GET', 'X-Forwarded-Method', 'POST', 'X-Original-URI', '/d'])).ok, false, 'methods that differ');
  t.equal(originalRequest(req(['X-Original-Method', 'GET', 'X-Original-URI', 'https://evil/d?uri=a'])).ok, false, 'an absolute URI');
});
