// gcs signing against the GCS V4 conformance vectors (signatures, canonical requests,
// URLs), and end to end through a real Keyhole against a loopback verifier that checks
// V4 signatures independently (there is no GCS emulator here).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import { request } from 'undici';
import { signGcsUrl, type GcsKey } from '../../src/providers/cloud/gcs-sign.ts';
import { ConfigError, parseConfig } from '../../src/config/load.ts';
import { ADMIN_TOKEN, baseYaml, dataUrl, keyholeWith, startKeyhole, TEST_SECRET } from '../helpers/keyhole.ts';
import { cloudProvider, GCS_KEY_FILE, uri, vector } from '../fixtures/cloud/vectors.ts';
import { publicKeyOf, startGcsVerifier } from '../fixtures/cloud/gcs-verifier.ts';

const sa = JSON.parse(readFileSync(GCS_KEY_FILE, 'utf8'));
const rsaKey: GcsKey = { type: 'rsa', clientEmail: sa.client_email, privateKey: createPrivateKey(sa.private_key) };
const QUIRK = 'Universe domain with virtual hosted style';

t.test('GCS V4 conformance vectors: every signed-URL case', async (t) => {
  const cases = vector('gcs/v4_signatures.json').signingV4Tests as any[];
  t.equal(cases.length, 29);
  for (const c of cases) {
    const style = c.urlStyle === 'VIRTUAL_HOSTED_STYLE' ? 'virtual' : c.urlStyle === 'BUCKET_BOUND_HOSTNAME' ? 'bound' : 'path';
    // Where the client libraries take the host from, in their order of precedence.
    const strip = (h: string) => h.replace(/^https?:\/\//, '');
    const host =
      style === 'bound' ? c.bucketBoundHostname
      : c.hostname ?? (c.clientEndpoint ? strip(c.clientEndpoint) : c.emulatorHostname ? strip(c.emulatorHostname) : c.universeDomain ? `storage.${c.universeDomain}` : 'storage.googleapis.com');
    const headers = (c.headers ?? {}) as Record<string, string>;
    const signed = signGcsUrl({
      key: rsaKey,
      method: c.method,
      bucket: c.bucket,
      object: c.object ?? '',
      protocol: `${c.scheme ?? 'https'}:`,
      host,
      style,
      signAt: Date.parse(c.timestamp),
      expiresSeconds: c.expiration,
      headers,
      query: c.queryParameters ?? {},
    });
    t.equal(signed.url, c.expectedUrl, `${c.description}: URL`);
    if (c.description !== QUIRK) {
      t.equal(signed.canonicalRequest, c.expectedCanonicalRequest, `${c.description}: canonical request`);
      t.equal(signed.stringToSign, c.expectedStringToSign, `${c.description}: string to sign`);
    }
  }
});

t.test('the gcs provider signs the conformance "Simple GET" the same way', async (t) => {
  const p = cloudProvider(
    `  - name: g
    kind: gcs
    match: gs://test-bucket/
    credentials: { serviceAccountKey: "\${file:${GCS_KEY_FILE}}" }
    buckets: [{ name: test-bucket }]
    ttl: { default: 300s, max: 3600s }
    stable: { window: 0s, minRemaining: 5s }
`,
  );
  t.teardown(() => p.close());
  const c = (vector('gcs/v4_signatures.json').signingV4Tests as any[]).find((x) => x.description === 'Simple GET');
  const signed = await p.presignFor(uri('gs://test-bucket/test-object'), [], { now: new Date(c.timestamp), ttlSeconds: 10 });
  t.equal(signed.url, c.expectedUrl);
});

t.test('gcs config problems: unreadable or malformed key, with paths', async (t) => {
  const problems = (providerYaml: string) => {
    try {
      parseConfig(baseYaml(`providers:\n${providerYaml}`), { env: { KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN, BAD_JSON: '{"client_email": 1}' } });
      return '';
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.problems.map((p) => `${p.path}: ${p.message}`).join('\n');
    }
  };
  t.match(problems(`  - { name: g, kind: gcs, match: "gs://b1/", credentials: { serviceAccountKey: "\${file:/nonexistent/sa.json}" }, buckets: [{ name: b1 }] }\n`), /providers\[0\]\.credentials\.serviceAccountKey: file \/nonexistent\/sa\.json cannot be read/);
  const bad = problems(`  - { name: g, kind: gcs, match: "gs://b1/", credentials: { serviceAccountKey: "\${env:BAD_JSON}" }, buckets: [{ name: b1 }] }\n`);
  t.match(bad, /providers\[0\]\.credentials\.serviceAccountKey: env:BAD_JSON has no client_email and private_key/);
  t.notMatch(bad, /client_email": 1/, 'the key material is never quoted');
  t.match(problems(`  - { name: g, kind: gcs, match: "gs://b1/", credentials: { hmacAccessId: GOOG1X, hmacSecret: inline }, buckets: [{ name: b1 }] }\n`), /hmacSecret: must be a reference/);
});

const BODY = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) % 256));
const HMAC = { accessId: 'GOOG1EXAMPLEHMACID', secret: 'hmac-secret-for-tests-0123456789' };

const fetchUrl = async (url: string, method: 'GET' | 'HEAD' = 'GET', headers: Record<string, string> = {}) => {
  const res = await request(url, { method, headers, reset: true });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
};

for (const cred of ['rsa', 'hmac'] as const) {
  const credYaml = cred === 'rsa' ? `{ serviceAccountKey: "\${file:${GCS_KEY_FILE}}" }` : `{ hmacAccessId: ${HMAC.accessId}, hmacSecret: "\${env:GCS_HMAC}" }`;
  const env = { GCS_HMAC: HMAC.secret };

  t.test(`gcs (${cred}) against the loopback verifier: presign and proxy, Range and HEAD`, async (t) => {
    const up = await startGcsVerifier({ rsaPublicKey: publicKeyOf(sa.private_key), hmac: HMAC, objects: { '/labels/img/a.png': { body: BODY, type: 'image/png' } } });
    t.teardown(() => up.close());
    const yaml = (mode: string) => `  - name: g
    kind: gcs
    mode: ${mode}
    match: gs://labels/
    endpoint: ${up.origin}
    credentials: ${credYaml}
    buckets: [{ name: labels, prefixes: [img/] }]
`;
    // The verifier itself refuses what it should.
    const p = cloudProvider(yaml('presign'), env);
    t.teardown(() => p.close());
    const good = (await p.presignFor(uri('gs://labels/img/a.png'), [])).url;
    t.equal((await fetchUrl(good)).status, 200);
    const sig = new URL(good).searchParams.get('X-Goog-Signature')!;
    t.equal((await fetchUrl(good.replace(sig, sig.slice(0, -2) + (sig.endsWith('00') ? '11' : '00')))).status, 403, 'tampered signature');
    t.equal((await fetchUrl(good, 'HEAD')).status, 403, 'a GET signature used for HEAD');
    const old = (await p.presignFor(uri('gs://labels/img/a.png'), [], { now: new Date(Date.now() - 7_200_000) })).url;
    t.equal((await fetchUrl(old)).status, 403, 'expired');
    t.same(up.rejected.slice(-3), [cred === 'rsa' ? 'rsa signature' : 'hmac signature', cred === 'rsa' ? 'rsa signature' : 'hmac signature', 'expired']);

    const k = await startKeyhole(baseYaml(`providers:\n${yaml('presign')}`.replace('name: g', 'name: gp') + yaml('proxy').replace('name: g', 'name: gx').replace('gs://labels/', 'gs://labels/img/')), { env });
    t.teardown(() => k.close());
    // gs://labels/img/ goes to the proxy-mode provider (longest prefix), anything else to presign.
    const token = await k.token({ scope: ['gs://labels/'] });
    const auth = { authorization: `Bearer ${token}` };
    const proxied = await k.get(dataUrl('gs://labels/img/a.png'), auth);
    t.equal(proxied.status, 200);
    t.same(proxied.body, BODY);
    t.equal(proxied.headers['content-type'], 'image/png');
    const part = await k.get(dataUrl('gs://labels/img/a.png'), { ...auth, range: 'bytes=0-9' });
    t.equal(part.status, 206);
    t.same(part.body, BODY.subarray(0, 10));
    const head = await k.get(dataUrl('gs://labels/img/a.png'), auth, 'HEAD');
    t.equal(head.status, 200);
    t.equal(head.headers['content-length'], String(BODY.length));

    const { k: k2, token: token2 } = await keyholeWith(t, `providers:\n${yaml('presign')}`, ['gs://labels/'], { env });
    const redirect = await k2.get(dataUrl('gs://labels/img/a.png'), { authorization: `Bearer ${token2}` });
    t.equal(redirect.status, 307);
    const loc = redirect.headers.location as string;
    const ranged = await fetchUrl(loc, 'GET', { range: 'bytes=2990-' });
    t.equal(ranged.status, 206);
    t.same(ranged.body, BODY.subarray(2990));
    const headRedirect = await k2.get(dataUrl('gs://labels/img/a.png'), { authorization: `Bearer ${token2}` }, 'HEAD');
    t.equal((await fetchUrl(headRedirect.headers.location as string, 'HEAD')).status, 200, 'HEAD is signed as HEAD');
    const outside = await k2.get(dataUrl('gs://labels/other/a.png'), { authorization: `Bearer ${token2}` });
    t.equal(JSON.parse(outside.body.toString()).error, 'key_not_allowed');
    const logs = k.rawLogs() + k2.rawLogs();
    t.notOk(logs.includes(new URL(loc).searchParams.get('X-Goog-Signature')!), 'no signature in logs');
    t.notOk(logs.includes(HMAC.secret), 'no HMAC secret in logs');
    t.notOk(logs.includes('PRIVATE KEY'), 'no private key in logs');
  });
}
