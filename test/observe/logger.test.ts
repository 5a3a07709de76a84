// Log redaction: credentials never reach a log line, whatever shape they are logged in.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { createLogger, redactUrl } from '../../src/observe/logger.ts';
import { decisionFor } from '../../src/observe/audit.ts';

t.test('redaction of known credential fields', async (t) => {
  let out = '';
  const sink = new Writable({
    write(c, _e, cb) {
      out += c.toString();
      cb();
    },
  });
  const log = createLogger({ level: 'info', destination: sink });
  // Long random values: a short literal could turn up in the line's own timestamp or pid.
  const v = Array.from({ length: 6 }, () => randomBytes(12).toString('hex'));
  log.info({ token: v[0], headers: { authorization: `Bearer ${v[1]}`, cookie: `c=${v[2]}` }, password: v[3], nested: { secret: v[4], token: v[5] } }, 'x');
  v.forEach((s, i) => t.notOk(out.includes(s), `value ${i} appears nowhere in the line`));
  const line = JSON.parse(out) as Record<string, unknown>;
  t.same(
    { token: line.token, headers: line.headers, password: line.password, nested: line.nested },
    { token: '[redacted]', headers: { authorization: '[redacted]', cookie: '[redacted]' }, password: '[redacted]', nested: { secret: '[redacted]', token: '[redacted]' } },
    'each credential field is replaced where it was',
  );
  t.match(JSON.parse(out), { level: 'info', service: 'keyhole', msg: 'x' });
});

t.test('redactUrl', async (t) => {
  t.equal(redactUrl('/v1/data?uri=x&token=abc.def.ghi'), '/v1/data?uri=x&token=[redacted]');
  t.equal(redactUrl('https://b.s3/x?X-Amz-Signature=abc&X-Amz-Credential=AK%2F1&a=1'), 'https://b.s3/x?X-Amz-Signature=[redacted]&X-Amz-Credential=[redacted]&a=1');
  t.equal(redactUrl('https://acct.blob/x?sv=1&sig=abc'), 'https://acct.blob/x?sv=1&sig=[redacted]');
  t.equal(redactUrl('/a?mytoken=1'), '/a?mytoken=1', 'only whole parameter names');
  // What URLSearchParams (Keyhole's own data query) reads as `token` is redacted as `token`.
  for (const name of ['tok%65n', '%74oken', '%54%4F%4B%45%4E', 'X-Amz-%53ignature']) {
    const url = `/v1/data?uri=x&${name}=s3cr3t&b=1`;
    t.equal(new URLSearchParams(url.split('?')[1]).has(name.includes('Amz') ? 'X-Amz-Signature' : name === '%54%4F%4B%45%4E' ? 'TOKEN' : 'token'), true, `${name} reads as a credential name`);
    t.equal(redactUrl(url), `/v1/data?uri=x&${name}=[redacted]&b=1`, `${name}= is redacted`);
  }
  t.equal(redactUrl('/a?x=%zz&tok%zzen=1'), '/a?x=%zz&tok%zzen=1', 'a name that does not decode is not a credential name, and nothing throws');
  // A JWT under any name or in a path segment.
  const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';
  t.equal(redactUrl(`/v1/data?uri=x&t=${jwt}`), '/v1/data?uri=x&t=[redacted-jwt]');
  t.equal(redactUrl(`/files/${jwt}/a.png`), '/files/[redacted-jwt]/a.png');
  t.equal(redactUrl(`/v1/data?uri=https%3A%2F%2Fx%2F%3Fa%3D${jwt.replaceAll('.', '%2E')}`), '/v1/data?uri=https%3A%2F%2Fx%2F%3Fa%3D[redacted-jwt]', 'with its dots encoded');
});

t.test('audit decisions', async (t) => {
  t.equal(decisionFor('ok', 200), 'allow');
  t.equal(decisionFor('not_found', 404), 'allow');
  t.equal(decisionFor('range_not_satisfiable', 416), 'allow');
  t.equal(decisionFor('scope_denied', 403), 'deny');
  t.equal(decisionFor('token_expired', 401), 'deny');
  t.equal(decisionFor('upstream_timeout', 504), 'error');
  t.equal(decisionFor('upstream_error', 200), 'error', 'failed after the head was sent');
  t.equal(decisionFor('revocation_unavailable', 503), 'error');
});
