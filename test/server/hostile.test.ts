// The hostile-input battery (issue 2, "Tests and CI"): every case is refused with its 4xx,
// its reason code in the JSON body, one audit event saying so, and the upstream's own
// request log stays empty: nothing hostile ever reaches the upstream.
import t from 'tap';
import { connect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { createSecretKey } from 'node:crypto';
import { startUpstream } from '../helpers/upstream.ts';
import { testCerts } from '../helpers/certs.ts';
import { auditFor, dataUrl, startKeyhole, TEST_SECRET } from '../helpers/keyhole.ts';
import { b64u, sign, testKey } from '../auth/fixtures.ts';

const hs = createSecretKey(Buffer.from(TEST_SECRET));
const rs = testKey('rs');
const now = () => Math.floor(Date.now() / 1000);
const scope = { scope: ['https://data.corp/public/'] };

function yaml(origin: string): string {
  const c = testCerts();
  return `server:
  listen: { host: 127.0.0.1, port: 0 }
  tls: { cert: ${c.serverCert}, key: ${c.serverKey} }
  maxHeaderSize: 4096
admin:
  listen: { host: 127.0.0.1, port: 0 }
auth:
  issuer: test-issuer
  audience: keyhole
  clockTolerance: 30
  keys:
    - kid: k1
      algorithms: [HS256]
      secret: \${env:KEYHOLE_TEST_SECRET}
    - kid: rs1
      algorithms: [RS256]
      publicKey: ${rs.pemFile}
log: { level: debug }
providers:
  - name: corp
    kind: http
    match: https://data.corp/
    baseUrl: ${origin}/files/
    allowPrivateNetworks: true
    auth: { type: basic, username: user, password: "\${env:UP_PASS}" }
`;
}

interface Case {
  name: string;
  uri?: string;
  token?: () => Promise<string | undefined>;
  headers?: Record<string, string>;
  status: number;
  reason: string;
}

const good = () => sign(hs, { alg: 'HS256', kid: 'k1' }, scope);

const cases: Case[] = [
  { name: 'missing token', token: async () => undefined, status: 401, reason: 'token_missing' },
  { name: 'expired token', token: () => sign(hs, { alg: 'HS256', kid: 'k1' }, { ...scope, iat: now() - 700, exp: now() - 100 }), status: 401, reason: 'token_expired' },
  { name: 'not-yet-valid token (nbf)', token: () => sign(hs, { alg: 'HS256', kid: 'k1' }, { ...scope, nbf: now() + 300 }), status: 401, reason: 'token_not_yet_valid' },
  { name: 'token issued in the future (iat)', token: () => sign(hs, { alg: 'HS256', kid: 'k1' }, { ...scope, iat: now() + 300, exp: now() + 600 }), status: 401, reason: 'token_not_yet_valid' },
  { name: 'wrong audience', token: () => sign(hs, { alg: 'HS256', kid: 'k1' }, scope, { aud: 'someone-else' }), status: 401, reason: 'token_claims' },
  { name: 'wrong issuer', token: () => sign(hs, { alg: 'HS256', kid: 'k1' }, scope, { iss: 'evil' }), status: 401, reason: 'token_claims' },
  {
    name: 'alg none (unsecured JWT)',
    token: async () => `${b64u({ alg: 'none', typ: 'JWT' })}.${b64u({ iss: 'test-issuer', aud: 'keyhole', sub: 'alice', exp: now() + 600, ...scope })}.`,
    status: 401,
    reason: 'token_alg',
  },
  {
    name: 'alg none with a made-up signature',
    token: async () => `${b64u({ alg: 'none', kid: 'k1' })}.${b64u({ iss: 'test-issuer', aud: 'keyhole', sub: 'alice', exp: now() + 600, ...scope })}.AAAA`,
    status: 401,
    reason: 'token_alg',
  },
  {
    name: 'HS256 keyed with the RS public key PEM, RS kid (key confusion)',
    token: () => sign(Buffer.from(rs.pem), { alg: 'HS256', kid: 'rs1' }, scope),
    status: 401,
    reason: 'token_alg',
  },
  {
    name: 'HS256 keyed with the RS public key PEM, no kid',
    token: () => sign(Buffer.from(rs.pem), { alg: 'HS256' }, scope),
    status: 401,
    reason: 'token_invalid',
  },
  { name: 'unknown kid', token: () => sign(hs, { alg: 'HS256', kid: 'k9' }, scope), status: 401, reason: 'token_unknown_kid' },
  {
    name: 'tampered payload (scope widened, signature kept)',
    token: async () => {
      const [h, , s] = (await good()).split('.');
      return `${h}.${b64u({ iss: 'test-issuer', aud: 'keyhole', sub: 'alice', exp: now() + 600, scope: ['https://data.corp/'] })}.${s}`;
    },
    status: 401,
    reason: 'token_invalid',
  },
  { name: 'garbage token', token: async () => 'not.a.jwt!', status: 401, reason: 'token_malformed' },
  { name: 'token for another prefix', uri: 'https://data.corp/private/x.jpg', status: 403, reason: 'scope_denied' },
  { name: 'prefix that only shares characters', uri: 'https://data.corp/public-not/x.jpg', status: 403, reason: 'scope_denied' },
  {
    name: 'token for another exact URI',
    token: () => sign(hs, { alg: 'HS256', kid: 'k1' }, { uri: 'https://data.corp/public/a.jpg' }),
    uri: 'https://data.corp/public/b.jpg',
    status: 403,
    reason: 'scope_denied',
  },
  { name: 'traversal ../', uri: 'https://data.corp/public/../private/x.jpg', status: 400, reason: 'uri_traversal' },
  { name: 'traversal %2e%2e%2f', uri: 'https://data.corp/public/%2e%2e%2fprivate/x.jpg', status: 400, reason: 'uri_traversal' },
  { name: 'traversal %2e%2e/', uri: 'https://data.corp/public/%2e%2e/private/x.jpg', status: 400, reason: 'uri_traversal' },
  { name: 'traversal ..%5c', uri: 'https://data.corp/public/..%5cprivate/x.jpg', status: 400, reason: 'uri_forbidden_char' },
  { name: 'traversal ..\\ raw', uri: 'https://data.corp/public/..\\private/x.jpg', status: 400, reason: 'uri_forbidden_char' },
  { name: 'traversal double-encoded %252e%252e%252f', uri: 'https://data.corp/public/%252e%252e%252fprivate/x.jpg', status: 400, reason: 'uri_double_encoded' },
  { name: 'CR/LF in the URI', uri: 'https://data.corp/public/a.jpg%0d%0aX-Injected:%201', status: 400, reason: 'uri_forbidden_char' },
  { name: 'raw CR/LF in the URI', uri: 'https://data.corp/public/a\r\nX-Injected: 1', status: 400, reason: 'uri_forbidden_char' },
  { name: 'NUL in the URI', uri: 'https://data.corp/public/a.jpg%00.png', status: 400, reason: 'uri_forbidden_char' },
  { name: 'userinfo in the URI', uri: 'https://user:pass@data.corp/public/a.jpg', status: 400, reason: 'uri_userinfo' },
  { name: 'URI owned by no provider', uri: 'https://elsewhere.example/public/a.jpg', status: 403, reason: 'no_provider' },
  { name: 'relative URI', uri: '/etc/passwd', status: 400, reason: 'uri_invalid' },
  { name: 'query in the URI', uri: 'https://data.corp/public/a.jpg?x=1', status: 400, reason: 'uri_query' },
  { name: 'empty segment', uri: 'https://data.corp/public//a.jpg', status: 400, reason: 'uri_empty_segment' },
  { name: 'missing uri', uri: '', status: 400, reason: 'uri_missing' },
];

t.test('hostile inputs are refused before the upstream sees anything', async (t) => {
  const up = await startUpstream({
    demand: { header: 'authorization', value: `Basic ${Buffer.from('user:pass').toString('base64')}` },
    objects: { '/files/public/a.jpg': { body: 'A' }, '/files/private/x.jpg': { body: 'secret' } },
  });
  t.teardown(() => up.close());
  const k = await startKeyhole(yaml(up.origin), { env: { UP_PASS: 'pass' } });
  t.teardown(() => k.close());

  // The control: a good token on a good URI does reach the upstream.
  const ok = await k.get(dataUrl('https://data.corp/public/a.jpg'), { authorization: `Bearer ${await good()}` });
  t.equal(ok.status, 200, 'control request is served');
  t.equal(up.log.length, 1);
  up.log.length = 0;

  for (const c of cases) {
    const token = c.token ? await c.token() : await good();
    const path = c.uri === '' ? '/v1/data' : dataUrl(c.uri ?? 'https://data.corp/public/a.jpg');
    const res = await k.get(path, token ? { authorization: `Bearer ${token}`, ...c.headers } : { ...c.headers });
    t.equal(res.status, c.status, `${c.name}: status`);
    const body = JSON.parse(res.body.toString());
    t.equal(body.error, c.reason, `${c.name}: reason code`);
    t.equal(body.requestId, res.headers['x-request-id'], `${c.name}: request id in body`);
    const audit = await auditFor(k, res.headers['x-request-id'] as string);
    t.match(audit, { decision: 'deny', reason: c.reason, status: c.status, bytes: 0 }, `${c.name}: audit event`);
    t.equal(up.log.length, 0, `${c.name}: the upstream received nothing`);
    if (token) t.notOk(k.rawLogs().includes(token.split('.')[2] || token), `${c.name}: no signature in logs`);
  }
});

t.test('oversized request head: 431 with reason code and audit, nothing upstream', async (t) => {
  const up = await startUpstream({ objects: { '/files/public/a.jpg': { body: 'A' } } });
  t.teardown(() => up.close());
  const k = await startKeyhole(yaml(up.origin), { env: { UP_PASS: 'pass' } });
  t.teardown(() => k.close());
  const port = new URL(k.base).port;
  // A raw TLS socket: an HTTP client library might refuse to send such a head at all.
  const raw = await new Promise<string>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: Number(port), servername: 'localhost', ca: readFileSync(testCerts().caCert) }, () => {
      socket.write(`GET ${dataUrl('https://data.corp/public/a.jpg')} HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(8000)}\r\n\r\n`);
    });
    let text = '';
    socket.on('data', (d) => (text += d.toString()));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
  t.match(raw, /^HTTP\/1\.1 431 /);
  const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
  t.equal(body.error, 'header_too_large');
  const audit = await auditFor(k, body.requestId);
  t.match(audit, { decision: 'deny', reason: 'header_too_large', status: 431 });
  t.equal(up.log.length, 0, 'the upstream received nothing');
});

t.test('a refused raw URI is logged with its credential-bearing parameters redacted', async (t) => {
  const up = await startUpstream({});
  t.teardown(() => up.close());
  const k = await startKeyhole(yaml(up.origin), { env: { UP_PASS: 'pass' } });
  t.teardown(() => k.close());
  const res = await k.get(dataUrl('https://data.corp/public/a.jpg?X-Amz-Signature=deadbeefsig&token=tok123'), { authorization: `Bearer ${await good()}` });
  t.equal(JSON.parse(res.body.toString()).error, 'uri_query');
  const audit = await auditFor(k, res.headers['x-request-id'] as string);
  t.equal(audit.uri, 'https://data.corp/public/a.jpg?X-Amz-Signature=[redacted]&token=[redacted]');
  t.notOk(k.rawLogs().includes('deadbeefsig') || k.rawLogs().includes('tok123'));
});
