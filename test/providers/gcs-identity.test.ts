// gcs with no key (credentials: { source: adc }): google-auth-library finds the runtime's
// identity on a loopback metadata-server stand-in (GCE_METADATA_HOST), and IAM Credentials
// signBlob (a stand-in that signs only for a token it issued and the account it may sign
// as) makes each V4 signature. The URLs are verified by the loopback GCS verifier written
// from Google's published algorithm, with the stand-in account's PUBLIC key: presign and
// proxy mode through a real (spawned) Keyhole; IAM down or answering garbage: refused.
import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { baseYaml, dataUrl } from '../helpers/keyhole.ts';
import { spawnKeyhole } from '../helpers/spawn.ts';
import { startGcsVerifier } from '../fixtures/cloud/gcs-verifier.ts';
import { startGoogleStandIn } from '../fixtures/cloud/gce-metadata.ts';

const EMAIL = 'keyhole-signer@labeling-project.iam.gserviceaccount.com';
const BODY = Buffer.from(Array.from({ length: 4000 }, (_, i) => (i * 13) % 256));

const google = await startGoogleStandIn({ email: EMAIL });
t.teardown(() => google.close());
const gcs = await startGcsVerifier({ rsaPublicKey: google.publicKey, bearer: (token) => google.validToken(token), objects: { '/frames/img/a.png': { body: BODY, type: 'image/png' } } });
t.teardown(() => gcs.close());

const item = (name: string, mode: 'presign' | 'proxy', match: string, extra = '') => `  - name: ${name}
    kind: gcs
    mode: ${mode}
    match: ${match}
    endpoint: ${gcs.origin}
    credentials: { source: adc, iamEndpoint: ${google.iamEndpoint}, timeout: 10s${extra} }
    buckets: [{ name: frames }]
`;
// No key file anywhere: only the metadata server can name the identity.
const env = { GCE_METADATA_HOST: google.metadataHost, GOOGLE_APPLICATION_CREDENTIALS: '', CLOUDSDK_CONFIG: '/nonexistent', HOME: '/nonexistent' };

t.test('presign mode signed by signBlob for the metadata server\'s identity; proxy mode reads with its OAuth token', async (t) => {
  const yaml = baseYaml(`providers:\n${item('pre', 'presign', 'gs://frames/')}${item('prx', 'proxy', 'gs://frames/img/')}`);
  const k = await spawnKeyhole(yaml, { env });
  t.teardown(() => k.stop());
  const auth = { authorization: `Bearer ${await k.token({ scope: ['gs://frames/'] })}` };

  const proxied = await k.get(dataUrl('gs://frames/img/a.png'), { headers: auth });
  t.equal(proxied.status, 200, 'proxy mode: the storage stand-in accepted the bearer token');
  t.same(proxied.body, BODY);
  const part = await k.get(dataUrl('gs://frames/img/a.png'), { headers: { ...auth, range: 'bytes=5-14' } });
  t.equal(part.status, 206);
  t.same(part.body, BODY.subarray(5, 15));
  const proxiedRequests = gcs.log.slice();

  const pre = await k.get(dataUrl('gs://frames/other.png'), { headers: auth });
  t.equal(pre.status, 307, 'presign mode: a redirect');
  const url = new URL(String(pre.headers.location));
  t.equal(url.searchParams.get('X-Goog-Algorithm'), 'GOOG4-RSA-SHA256');
  t.match(url.searchParams.get('X-Goog-Credential'), new RegExp(`^${EMAIL.replace(/\./g, '\\.')}/`), 'signed as the identity the metadata server names');
  const fetched = await request(url.toString().replace('/frames/other.png', '/frames/img/a.png'));
  await fetched.body.dump();
  t.equal(fetched.statusCode, 403, 'the verifier checks the path the signature covers');
  t.ok(google.signBlobCalls.length >= 1 && google.signBlobCalls.every((c) => c.status === 200 && c.email === EMAIL), 'every signature by signBlob');
  t.notOk(proxiedRequests.some((r) => r.url.includes('X-Goog-Signature')), 'proxy mode sent no signed URL');
  t.ok(proxiedRequests.length >= 2 && proxiedRequests.every((r) => r.url === '/frames/img/a.png' && /^Bearer ya29\.stand-in-/.test(String(r.headers.authorization))), 'but the token, as a bearer');
  t.ok(google.tokensIssued >= 1, 'the access token came from the metadata server');
  t.notOk(/ya29\.stand-in/.test(k.output()), 'no access token in the output');
});

t.test('IAM down or answering garbage: refused credentials_unavailable; signing resumes when it is back', async (t) => {
  const yaml = baseYaml(`providers:\n${item('pre', 'presign', 'gs://frames/')}`);
  const k = await spawnKeyhole(yaml, { env });
  t.teardown(() => k.stop());
  const auth = { authorization: `Bearer ${await k.token({ scope: ['gs://frames/'] })}` };
  for (const mode of ['down', 'garbage'] as const) {
    google.iamMode = mode;
    const res = await k.get(dataUrl(`gs://frames/${mode}.png`), { headers: auth });
    t.equal(res.status, 502, `${mode}: no URL`);
    t.equal(JSON.parse(res.body.toString()).error, 'credentials_unavailable', `${mode}: credentials_unavailable`);
  }
  google.iamMode = 'ok';
  t.equal((await k.get(dataUrl('gs://frames/back.png'), { headers: auth })).status, 307, 'IAM back: signed again, no restart');
});

t.test('an account the identity may not sign as: PERMISSION_DENIED, refused', async (t) => {
  const yaml = baseYaml(`providers:\n${item('pre', 'presign', 'gs://frames/', ', serviceAccountEmail: someone-else@other.iam.gserviceaccount.com')}`);
  const k = await spawnKeyhole(yaml, { env });
  t.teardown(() => k.stop());
  const auth = { authorization: `Bearer ${await k.token({ scope: ['gs://frames/'] })}` };
  const res = await k.get(dataUrl('gs://frames/x.png'), { headers: auth });
  t.equal(res.status, 502);
  t.equal(JSON.parse(res.body.toString()).error, 'credentials_unavailable');
  t.ok(google.signBlobCalls.some((c) => c.status === 403 && c.email === 'someone-else@other.iam.gserviceaccount.com'));
});

// Proxy mode injects the identity's OAuth token as a bearer: an upstream that echoes the
// request (a debug endpoint, a misrouted echo service) must not hand it to the browser. A
// stand-in of our own, as no real storage server echoes: the token in a header, in the body.
t.test('proxy mode: an upstream echoing the bearer token is refused in a header and cut in the body', async (t) => {
  const echo = createServer((req, res) => {
    const auth = String(req.headers.authorization ?? '');
    if (req.url === '/frames/img/header.png') res.writeHead(200, { 'content-type': 'image/png', 'x-debug-authorization': auth }).end('ok');
    else if (req.url === '/frames/img/body.txt') res.writeHead(200, { 'content-type': 'text/plain' }).end(`${'x'.repeat(70_000)} you sent: ${auth}\n`);
    else if (req.url === '/frames/img/json.txt') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ headers: { Authorization: auth } }));
    else res.writeHead(200, { 'content-type': 'image/png' }).end('plain');
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.teardown(() => echo.close());
  const origin = `http://127.0.0.1:${(echo.address() as AddressInfo).port}`;
  const yaml = baseYaml(`providers:\n${item('prx', 'proxy', 'gs://frames/img/').replace(`endpoint: ${gcs.origin}`, `endpoint: ${origin}`)}`);
  const k = await spawnKeyhole(yaml, { env });
  t.teardown(() => k.stop());
  const auth = { authorization: `Bearer ${await k.token({ scope: ['gs://frames/'] })}` };

  const plain = await k.get(dataUrl('gs://frames/img/plain.png'), { headers: auth });
  t.equal(plain.status, 200, 'an answer without the token passes');
  const header = await k.get(dataUrl('gs://frames/img/header.png'), { headers: auth });
  t.equal(header.status, 502, 'the token in a header: refused before the head');
  t.equal((JSON.parse(header.body.toString()) as { error: string }).error, 'upstream_credential_echo');
  for (const path of ['body.txt', 'json.txt']) {
    // Every byte that arrived, up to the cut (a cut body ends the connection mid-stream).
    const res = await request(k.base + dataUrl(`gs://frames/img/${path}`), { headers: auth, dispatcher: k.dispatcher });
    const chunks: Buffer[] = [];
    let cut = false;
    try {
      for await (const chunk of res.body) chunks.push(chunk as Buffer);
    } catch {
      cut = true;
    }
    t.ok(res.statusCode === 502 || (res.statusCode === 200 && cut), `${path}: refused or cut (status ${res.statusCode}, cut ${cut})`);
    t.notMatch(Buffer.concat(chunks).toString(), /ya29\./, `${path}: no byte of the token reached the client`);
  }
  t.ok(google.tokensIssued >= 1, 'a real token was injected');
  for (const path of ['header.png', 'body.txt', 'json.txt']) {
    const audited = (l: { kind?: unknown; audit?: unknown }) => l.kind === 'audit' && (l.audit as { uri?: string }).uri === `gs://frames/img/${path}`;
    const line = await k.waitForLog(audited, 5_000, `the audit event of ${path}`);
    t.match(line.audit, { reason: 'upstream_credential_echo', decision: 'error' }, `${path}: audited as upstream_credential_echo`);
  }
  t.notMatch(k.output(), /ya29\.stand-in/, 'no token in Keyhole’s output');
});
