// s3 end to end through a real Keyhole against a real S3 server that verifies SigV4
// (@20minutes/s3rver): presign mode (307 → presigned URL) and proxy mode (signed and
// streamed), each with a Range request and a HEAD; the oracle's rejections proven first.
import t from 'tap';
import { request } from 'undici';
import { HttpRequest } from '@smithy/protocol-http';
import { s3Signer } from '../../src/providers/s3.ts';
import { auditFor, dataUrl, keyholeWith } from '../helpers/keyhole.ts';
import { cloudProvider, uri } from '../fixtures/cloud/vectors.ts';
import { startS3rver, S3RVER_KEY, S3RVER_SECRET } from '../fixtures/cloud/s3rver.ts';

const BODY = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251));

const s3 = await startS3rver(['bucket1', 'bucket2']);
t.teardown(() => s3.close());
await s3.put('bucket1', 'images/cat.jpg', BODY, 'image/jpeg');
await s3.put('bucket1', 'images/a b+c.jpg', BODY.subarray(0, 100), 'image/jpeg');
await s3.put('bucket1', 'private/secret.txt', 'no');

const providerYaml = (mode: 'proxy' | 'presign', secretEnv = 'S3_SECRET', extra = '') => s3.providerItem({ name: 'store', bucket: 'bucket1', mode, prefixes: ['images/'], secretEnv, extra });
const env = { S3_SECRET: S3RVER_SECRET, WRONG_SECRET: 'not-the-secret' };

const fetchUrl = async (url: string, method: 'GET' | 'HEAD' = 'GET', headers: Record<string, string> = {}) => {
  const res = await request(url, { method, headers, reset: true });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body };
};

t.test('the oracle verifies SigV4: tampered signature, path, method, expiry or secret → 403', async (t) => {
  const p = cloudProvider(providerYaml('presign'), env);
  t.teardown(() => p.close());
  const good = (await p.presignFor(uri('s3://bucket1/images/cat.jpg'), [])).url;
  t.equal((await fetchUrl(good)).status, 200, 'the untouched URL is served');
  const sig = new URL(good).searchParams.get('X-Amz-Signature')!;
  const flipped = sig.slice(0, -1) + (sig.endsWith('0') ? '1' : '0');
  t.equal((await fetchUrl(good.replace(sig, flipped))).status, 403, 'tampered signature');
  t.equal((await fetchUrl(good.replace('/images/cat.jpg', '/images/a%20b%2Bc.jpg'))).status, 403, 'another object, same signature');
  t.equal((await fetchUrl(good, 'HEAD')).status, 403, 'a GET signature used for HEAD');
  const expired = (await p.presignFor(uri('s3://bucket1/images/cat.jpg'), [], { now: new Date(Date.now() - 3_600_000), ttlSeconds: 300 })).url;
  t.equal((await fetchUrl(expired)).status, 403, 'expired');
  const wrong = cloudProvider(providerYaml('presign', 'WRONG_SECRET'), env);
  t.teardown(() => wrong.close());
  t.equal((await fetchUrl((await wrong.presignFor(uri('s3://bucket1/images/cat.jpg'), [])).url)).status, 403, 'signed with the wrong secret');
});

t.test('the oracle also verifies header-signed SigV4 (Authorization), and rejects it tampered', async (t) => {
  const host = new URL(s3.endpoint).host;
  const signer = s3Signer({ accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_SECRET }, 'us-east-1');
  const empty = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
  const req = new HttpRequest({ method: 'GET', protocol: 'http:', hostname: '127.0.0.1', port: Number(new URL(s3.endpoint).port), path: '/bucket1/images/cat.jpg', headers: { host, 'x-amz-content-sha256': empty, range: 'bytes=0-9' } });
  const signed = await signer.sign(req);
  const headers = signed.headers as Record<string, string>;
  const ok = await fetchUrl(`${s3.endpoint}/bucket1/images/cat.jpg`, 'GET', headers);
  t.equal(ok.status, 206);
  t.same(ok.body, BODY.subarray(0, 10));
  const auth = headers.authorization!;
  const tampered = { ...headers, authorization: auth.slice(0, -1) + (auth.endsWith('0') ? '1' : '0') };
  t.equal((await fetchUrl(`${s3.endpoint}/bucket1/images/cat.jpg`, 'GET', tampered)).status, 403, 'tampered Authorization');
  t.equal((await fetchUrl(`${s3.endpoint}/bucket1/images/cat.jpg`, 'GET', { ...headers, range: 'bytes=0-99' })).status, 403, 'a signed header changed');
});

t.test('presign mode end to end: 307 to a URL the S3 server serves, Range and HEAD', async (t) => {
  const { k, auth } = await keyholeWith(t, `providers:\n${providerYaml('presign')}`, ['s3://bucket1/'], { env });

  const res = await k.get(dataUrl('s3://bucket1/images/cat.jpg'), auth);
  t.equal(res.status, 307);
  t.equal(res.headers['cache-control'], 'private, no-store');
  t.equal(res.headers['referrer-policy'], 'no-referrer');
  const location = res.headers.location as string;
  t.ok(location.startsWith(`${s3.endpoint}/bucket1/images/cat.jpg?`));
  const ask = async () => (await k.get(dataUrl('s3://bucket1/images/cat.jpg'), auth)).headers.location as string;
  // Two asks ms apart can straddle a 60 s window edge; if they did, ask again (two edges
  // cannot fall inside one pair, so a signer that is not stable still fails).
  let [first, second] = [location, await ask()];
  if (first !== second) [first, second] = [second, await ask()];
  t.equal(second, first, 'stable URL: the same within the window');

  const full = await fetchUrl(location);
  t.equal(full.status, 200);
  t.same(full.body, BODY);
  const part = await fetchUrl(location, 'GET', { range: 'bytes=100-199' });
  t.equal(part.status, 206);
  t.same(part.body, BODY.subarray(100, 200));
  t.equal(part.headers['content-range'], `bytes 100-199/${BODY.length}`);

  const head = await k.get(dataUrl('s3://bucket1/images/cat.jpg'), auth, 'HEAD');
  t.equal(head.status, 307);
  const headLocation = head.headers.location as string;
  t.not(headLocation, location, 'HEAD is signed as HEAD');
  const headed = await fetchUrl(headLocation, 'HEAD');
  t.equal(headed.status, 200);
  t.equal(headed.headers['content-length'], String(BODY.length));

  const odd = await k.get(dataUrl('s3://bucket1/images/a b+c.jpg'), auth);
  const oddBody = await fetchUrl(odd.headers.location as string);
  t.equal(oddBody.status, 200, 'a key with space and plus signs and verifies');
  t.equal(oddBody.body.length, 100);

  const outside = await k.get(dataUrl('s3://bucket1/private/secret.txt'), auth);
  t.equal(outside.status, 403);
  t.equal(JSON.parse(outside.body.toString()).error, 'key_not_allowed');
  const otherBucket = await k.get(dataUrl('s3://bucket2/images/cat.jpg'), { authorization: `Bearer ${await k.token({ scope: ['s3://bucket1/', 's3://bucket2/'] })}` });
  t.equal(JSON.parse(otherBucket.body.toString()).error, 'no_provider', 'a bucket no provider names is never signed');
  const audit = await auditFor(k, res.headers['x-request-id'] as string);
  t.match(audit, { provider: 'store', uri: 's3://bucket1/images/cat.jpg', decision: 'allow', reason: 'ok', status: 307 });

  const sig = new URL(location).searchParams.get('X-Amz-Signature')!;
  t.notOk(k.rawLogs().includes(sig), 'the signature never appears in logs');
  t.notOk(k.rawLogs().includes(S3RVER_SECRET + '"'), 'the secret never appears in logs');
});

t.test('response overrides are signed into the URL and honoured by the server', async (t) => {
  const p = cloudProvider(providerYaml('presign', 'S3_SECRET', 'response: { contentType: text/plain, contentDisposition: attachment }'), env);
  t.teardown(() => p.close());
  const res = await fetchUrl((await p.presignFor(uri('s3://bucket1/images/cat.jpg'), [])).url);
  t.equal(res.status, 200);
  t.equal(res.headers['content-type'], 'text/plain');
  t.equal(res.headers['content-disposition'], 'attachment; filename="cat.jpg"');
});

t.test('POST /v1/presign: per-URI answers, errors with reason codes, TTL', async (t) => {
  const { k, token } = await keyholeWith(t, `providers:\n${providerYaml('presign', 'S3_SECRET', 'ttl: { default: 300s, max: 900s }')}`, ['s3://bucket1/', 's3://bucket2/'], { env });
  const post = (body: unknown) => k.get('/v1/presign', { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, 'POST', JSON.stringify(body));
  const res = await post({ uris: ['s3://bucket1/images/cat.jpg', 's3://bucket2/x.jpg', 's3://bucket1/private/secret.txt', 'gs://nope/x'] });
  t.equal(res.status, 200);
  const { results } = JSON.parse(res.body.toString());
  t.equal(results[0].uri, 's3://bucket1/images/cat.jpg');
  t.ok(Date.parse(results[0].expiresAt) - Date.now() >= 120_000, 'at least stable.minRemaining left');
  t.equal((await fetchUrl(results[0].url)).status, 200);
  t.same(results.slice(1).map((r: any) => r.error), ['no_provider', 'key_not_allowed', 'no_provider']);
  const long = JSON.parse((await post({ uris: ['s3://bucket1/images/cat.jpg'], ttl: 901 })).body.toString());
  t.equal(long.results[0].error, 'ttl_too_long');
  const ok = JSON.parse((await post({ uris: ['s3://bucket1/images/cat.jpg'], ttl: 900 })).body.toString());
  t.equal(new URL(ok.results[0].url).searchParams.get('X-Amz-Expires'), '900');
  t.equal((await post({ uris: ['s3://bucket1/images/cat.jpg'], ttl: 'long' })).status, 400);
});

t.test('proxy mode end to end: signed by Keyhole, streamed, Range and HEAD', async (t) => {
  const { k, auth } = await keyholeWith(t, `providers:\n${providerYaml('proxy')}`, ['s3://bucket1/'], { env });
  const full = await k.get(dataUrl('s3://bucket1/images/cat.jpg'), auth);
  t.equal(full.status, 200);
  t.same(full.body, BODY);
  t.equal(full.headers['content-type'], 'image/jpeg');
  t.equal(full.headers['x-amz-request-id'], undefined, 'S3 headers are not relayed');
  const part = await k.get(dataUrl('s3://bucket1/images/cat.jpg'), { ...auth, range: 'bytes=4000-' });
  t.equal(part.status, 206);
  t.same(part.body, BODY.subarray(4000));
  const head = await k.get(dataUrl('s3://bucket1/images/cat.jpg'), auth, 'HEAD');
  t.equal(head.status, 200);
  t.equal(head.headers['content-length'], String(BODY.length));
  t.equal(head.body.length, 0);
  const missing = await k.get(dataUrl('s3://bucket1/images/none.jpg'), auth);
  t.equal(missing.status, 404);
  const audit = await auditFor(k, full.headers['x-request-id'] as string);
  t.match(audit, { decision: 'allow', reason: 'ok', status: 200, bytes: BODY.length });
  const batch = await k.get('/v1/presign', { ...auth, 'content-type': 'application/json' }, 'POST', JSON.stringify({ uris: ['s3://bucket1/images/cat.jpg'] }));
  t.same(JSON.parse(batch.body.toString()).results, [{ uri: 's3://bucket1/images/cat.jpg', error: 'no_provider' }], 'a proxy-mode provider hands out no URLs');
});

t.test('proxy mode with a wrong secret: the server refuses, Keyhole answers 502 and leaks nothing', async (t) => {
  const { k, token } = await keyholeWith(t, `providers:\n${providerYaml('proxy', 'WRONG_SECRET')}`, ['s3://bucket1/'], { env });
  const res = await k.get(dataUrl('s3://bucket1/images/cat.jpg'), { authorization: `Bearer ${token}` });
  t.equal(res.status, 502);
  t.equal(JSON.parse(res.body.toString()).error, 'upstream_status');
  t.notOk(res.body.toString().includes('Signature'), 'no upstream error body');
  t.notOk(k.rawLogs().includes('not-the-secret'));
});

t.test('credentials from the AWS default chain: temporary keys and session token from the environment', async (t) => {
  const expiration = new Date(Date.now() + 600_000);
  const saved = { ...process.env };
  t.teardown(() => {
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_CREDENTIAL_EXPIRATION']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });
  process.env.AWS_ACCESS_KEY_ID = S3RVER_KEY;
  process.env.AWS_SECRET_ACCESS_KEY = S3RVER_SECRET;
  process.env.AWS_SESSION_TOKEN = 'FwoGZXIvYXdzEXAMPLE-session-token';
  process.env.AWS_CREDENTIAL_EXPIRATION = expiration.toISOString();
  const yaml = `  - name: keyless
    kind: s3
    mode: presign
    match: s3://bucket1/
    endpoint: ${s3.endpoint}
    pathStyle: true
    credentials: { source: chain, refreshBefore: 60s }
    buckets: [{ name: bucket1 }]
    ttl: { default: 300s, max: 3600s }
`;
  const p = cloudProvider(yaml);
  t.teardown(() => p.close());
  const signed = await p.presignFor(uri('s3://bucket1/images/cat.jpg'), []);
  const u = new URL(signed.url);
  t.equal(u.searchParams.get('X-Amz-Security-Token'), 'FwoGZXIvYXdzEXAMPLE-session-token');
  t.match(u.searchParams.get('X-Amz-Credential'), /^S3RVER\//);
  t.equal((await fetchUrl(signed.url)).status, 200, 'the S3 server accepts it (the token is part of the signed query)');
  const tampered = signed.url.replace('FwoGZXIvYXdzEXAMPLE', 'FwoGZXIvYXdzEXAMPLF');
  t.equal((await fetchUrl(tampered)).status, 403, 'a changed session token breaks the signature');
  const long = await p.presignFor(uri('s3://bucket1/images/cat.jpg'), [], { ttlSeconds: 3600 });
  t.equal(long.expiresAt, expiration.toISOString(), 'expiresAt says when the temporary credentials end');
});
