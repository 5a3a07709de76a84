import t from 'tap';
import { upstreamBehindKeyhole } from '../helpers/upstream.ts';
import { auditFor } from '../helpers/keyhole.ts';

t.test('http provider streams the object with BasicAuth injected, audit event written', async (t) => {
  const { up, k, token, get } = await upstreamBehindKeyhole(
    t,
    {
      demand: { header: 'authorization', value: `Basic ${Buffer.from('user:pass').toString('base64')}` },
      objects: { '/files/cat.jpg': { body: Buffer.alloc(1024, 7), type: 'image/jpeg' } },
    },
    { path: '/files/', extra: 'auth: { type: basic, username: user, password: "${env:UP_PASS}" }', env: { UP_PASS: 'pass' } },
  );
  const res = await get('cat.jpg');
  t.equal(res.status, 200);
  t.equal(res.body.length, 1024);
  t.equal(res.headers['content-type'], 'image/jpeg');
  t.equal(res.headers['cache-control'], 'private');
  t.equal(res.headers['set-cookie'], undefined, 'upstream cookies never relayed');
  t.equal(res.headers['x-amz-request-id'], undefined);
  t.equal(up.log.length, 1);
  t.equal(up.log[0]!.url, '/files/cat.jpg');
  const audit = await auditFor(k, res.headers['x-request-id'] as string);
  t.match(audit, { sub: 'alice', provider: 'corp', uri: 'https://data.corp/cat.jpg', decision: 'allow', reason: 'ok', status: 200, bytes: 1024 });
  t.notOk(k.rawLogs().includes(token), 'the token never appears in logs');
  t.notOk(k.rawLogs().includes('pass"'), 'the upstream password never appears in logs');
});
