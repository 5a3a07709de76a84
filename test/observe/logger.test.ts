// Log redaction: credentials never reach a log line, whatever shape they are logged in.
import t from 'tap';
import { Writable } from 'node:stream';
import { createLogger, redactUrl } from '../../src/observe/logger.js';
import { decisionFor } from '../../src/observe/audit.js';

t.test('redaction of known credential fields', async (t) => {
  let out = '';
  const sink = new Writable({
    write(c, _e, cb) {
      out += c.toString();
      cb();
    },
  });
  const log = createLogger({ level: 'info', destination: sink });
  log.info({ token: 'T1', headers: { authorization: 'Bearer T2', cookie: 'c=T3' }, password: 'T4', nested: { secret: 'T5', token: 'T6' } }, 'x');
  for (const s of ['T1', 'T2', 'T3', 'T4', 'T5', 'T6']) t.notOk(out.includes(s), `${s} redacted`);
  t.match(out, /\[redacted\]/);
  t.match(JSON.parse(out), { level: 'info', service: 'keyhole', msg: 'x' });
});

t.test('redactUrl', async (t) => {
  t.equal(redactUrl('/v1/data?uri=x&token=abc.def.ghi'), '/v1/data?uri=x&token=[redacted]');
  t.equal(redactUrl('https://b.s3/x?X-Amz-Signature=abc&X-Amz-Credential=AK%2F1&a=1'), 'https://b.s3/x?X-Amz-Signature=[redacted]&X-Amz-Credential=[redacted]&a=1');
  t.equal(redactUrl('https://acct.blob/x?sv=1&sig=abc'), 'https://acct.blob/x?sv=1&sig=[redacted]');
  t.equal(redactUrl('/a?mytoken=1'), '/a?mytoken=1', 'only whole parameter names');
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
