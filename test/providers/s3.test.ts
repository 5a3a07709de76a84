// s3 signing against answers computed elsewhere: the AWS S3 docs examples (byte for
// byte) and the aws-c-auth SigV4 suite through @smithy/signature-v4 configured the way
// the s3 provider configures it; plus the config-time and request-time refusals.
import t from 'tap';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { Hash } from '@smithy/hash-node';
import { presignedUrl, s3Signer } from '../../src/providers/s3.ts';
import { encodeKey } from '../../src/providers/cloud/encode.ts';
import { ConfigError, parseConfig } from '../../src/config/load.ts';
import { CloudRefusal } from '../../src/providers/cloud/errors.ts';
import { baseYaml, TEST_SECRET, ADMIN_TOKEN } from '../helpers/keyhole.ts';
import { cloudProvider, uri, vector } from '../fixtures/cloud/vectors.ts';

const docs = vector('aws/aws-s3-docs-examples.json');
const env = { DOCS_SECRET: docs.credentials.secretAccessKey };
const docsProvider = (extra = '') =>
  cloudProvider(
    `  - name: docs
    kind: s3
    match: s3://examplebucket/
    region: us-east-1
    endpoint: https://s3.amazonaws.com
    credentials: { accessKeyId: ${docs.credentials.accessKeyId}, secretAccessKey: "\${env:DOCS_SECRET}" }
    buckets: [{ name: examplebucket }]
    ttl: { default: 300s, max: 7d }
${extra}`.replace('7d', '604800s'),
    env,
  );

t.test('the S3 docs presigned GET example, byte for byte, through the provider', async (t) => {
  const p = docsProvider();
  t.teardown(() => p.close());
  const signed = await p.presignFor(uri('s3://examplebucket/test.txt'), [], { now: new Date('2013-05-24T00:00:00Z'), ttlSeconds: 86400 });
  t.equal(signed.url, docs.presignedGet.expectedUrl);
  t.equal(signed.expiresAt, '2013-05-25T00:00:00.000Z');
  // Any time in the same stable window signs to the very same URL.
  const later = await p.presignFor(uri('s3://examplebucket/test.txt'), [], { now: new Date('2013-05-24T00:00:59Z'), ttlSeconds: 86400 });
  t.equal(later.url, docs.presignedGet.expectedUrl);
});

t.test('the S3 docs header-signed Range example through the same signer configuration', async (t) => {
  const signer = s3Signer(docs.credentials, 'us-east-1');
  const h = docs.headerGetObjectRange;
  const req = new HttpRequest({ method: 'GET', protocol: 'https:', hostname: h.host, path: h.path, headers: { host: h.host, ...h.headers } });
  const signed = await signer.sign(req, { signingDate: new Date('2013-05-24T00:00:00Z') });
  t.equal(signed.headers.authorization, h.expectedAuthorization);
});

t.test('aws-c-auth SigV4 suite through @smithy/signature-v4', async (t) => {
  const suite = vector('aws/aws-sigv4-suite.json').cases as Record<string, Record<string, any>>;
  const parse = (raw: string) => {
    // request.txt: request line, then Name:value lines (a line starting with space continues the previous one), blank, body
    const [head, ...bodyParts] = raw.split('\n\n');
    const lines = head!.split('\n');
    const line = lines[0]!;
    const method = line.slice(0, line.indexOf(' '));
    const target = line.slice(line.indexOf(' ') + 1, line.lastIndexOf(' HTTP/'));
    const headers: [string, string][] = [];
    for (const line of lines.slice(1)) {
      if (/^\s/.test(line) && headers.length) headers[headers.length - 1]![1] += `\n${line}`;
      else if (line) headers.push([line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1)]);
    }
    return { method, target, headers, body: bodyParts.join('\n\n') };
  };
  let header = 0;
  let presign = 0;
  let s3style = 0;
  for (const [name, c] of Object.entries(suite)) {
    const ctx = c['context.json'];
    const r = parse(c['request.txt']);
    const q = r.target.indexOf('?');
    const rawPath = q === -1 ? r.target : r.target.slice(0, q);
    const query: Record<string, string | string[]> = {};
    if (q !== -1) {
      for (const pair of r.target.slice(q + 1).split('&')) {
        const eq = pair.indexOf('=');
        const k = decodeURIComponent(eq === -1 ? pair : pair.slice(0, eq));
        const v = eq === -1 ? '' : decodeURIComponent(pair.slice(eq + 1));
        query[k] = k in query ? ([] as string[]).concat(query[k]!, v) : v;
      }
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of r.headers) headers[k] = headers[k] !== undefined ? `${headers[k]},${v}` : v;
    const creds = { accessKeyId: ctx.credentials.access_key_id, secretAccessKey: ctx.credentials.secret_access_key, ...(ctx.credentials.token ? { sessionToken: ctx.credentials.token } : {}) };
    // normalize: true asks smithy to normalise and escape the path (uriEscapePath); with
    // normalize: false the path is signed as sent, once encoded — how the s3 provider signs.
    const generic = new SignatureV4({ credentials: creds, region: ctx.region, service: ctx.service, sha256: Hash.bind(null, 'sha256'), uriEscapePath: ctx.normalize !== false, applyChecksum: ctx.sign_body === true });
    const mk = () => new HttpRequest({ method: r.method, protocol: 'https:', hostname: headers.Host ?? headers.host ?? 'example.amazonaws.com', path: ctx.normalize === false ? encodeKey(rawPath) : rawPath, query: { ...query }, headers: { ...headers }, body: r.body || undefined });
    const date = new Date(ctx.timestamp);
    if (c['header-signature.txt'] && !ctx.omit_session_token) {
      const signed = await generic.sign(mk(), { signingDate: date });
      t.match(signed.headers.authorization ?? signed.headers.Authorization, new RegExp(`Signature=${c['header-signature.txt'].trim()}$`), `${name}: header signature`);
      header++;
    }
    if (c['query-signature.txt'] && !ctx.omit_session_token) {
      const signed = await generic.presign(mk(), { signingDate: date, expiresIn: ctx.expiration_in_seconds });
      t.equal(signed.query?.['X-Amz-Signature'], c['query-signature.txt'].trim(), `${name}: presigned signature`);
      presign++;
    }
    // Cases whose path needs no normalisation or double encoding apply to S3 as it is
    // configured in the provider: same canonical request, same signature.
    const canonicalPath = (c['query-canonical-request.txt'] as string | undefined)?.split('\n')[1];
    if (c['query-signature.txt'] && !ctx.omit_session_token && canonicalPath === rawPath) {
      const s3 = s3Signer(creds, ctx.region, ctx.service);
      const signed = await s3.presign(mk(), { signingDate: date, expiresIn: ctx.expiration_in_seconds });
      t.equal(signed.query?.['X-Amz-Signature'], c['query-signature.txt'].trim(), `${name}: s3 provider signer`);
      s3style++;
    }
  }
  t.ok(header >= 30, `${header} header-signed cases`);
  t.ok(presign >= 30, `${presign} presigned cases`);
  t.ok(s3style >= 15, `${s3style} cases apply to the s3 signer configuration`);
});

t.test('presignedUrl serialises in signing order with the signature last', async (t) => {
  const req = new HttpRequest({ method: 'GET', protocol: 'http:', hostname: '127.0.0.1', port: 9000, path: '/b/k', headers: {}, query: { b: 'x y', 'X-Amz-Signature': 'abc', a: '1' } });
  t.equal(presignedUrl(req), 'http://127.0.0.1:9000/b/k?a=1&b=x%20y&X-Amz-Signature=abc');
});

t.test('path-style, publicEndpoint, session token and response overrides', async (t) => {
  const p = cloudProvider(
    `  - name: minio
    kind: s3
    match: s3://data/
    endpoint: http://minio.internal:9000
    publicEndpoint: https://files.example.org/s3
    pathStyle: true
    credentials: { accessKeyId: AKID, secretAccessKey: "\${env:S}", sessionToken: "\${env:T}" }
    buckets: [{ name: data, prefixes: [images/] }]
    response: { contentType: byExtension, contentDisposition: inline }
`,
    { S: 'secret-value', T: 'session-token-value' },
  );
  t.teardown(() => p.close());
  const now = new Date('2026-01-01T00:00:30Z');
  const pub = await p.presignFor(uri('s3://data/images/a b.jpg'), [], { now });
  const u = new URL(pub.url);
  t.equal(u.origin, 'https://files.example.org');
  t.equal(u.pathname, '/s3/data/images/a%20b.jpg');
  t.equal(u.searchParams.get('X-Amz-Security-Token'), 'session-token-value');
  t.equal(u.searchParams.get('response-content-type'), 'image/jpeg');
  t.equal(u.searchParams.get('response-content-disposition'), 'inline; filename="a b.jpg"');
  const accented = new URL((await p.presignFor(uri('s3://data/images/é "x".jpg'), [], { now })).url);
  t.equal(accented.searchParams.get('response-content-disposition'), "inline; filename*=UTF-8''%C3%A9%20%22x%22.jpg", 'RFC 6266 form beyond plain ASCII');
  t.equal(u.searchParams.get('X-Amz-Date'), '20260101T000000Z', 'rounded down to the 60 s window');
  t.equal(u.searchParams.get('X-Amz-Expires'), '300');
  const internal = await p.mint(uri('s3://data/images/a b.jpg'), { method: 'HEAD', audience: 'internal', nowMs: now.getTime() });
  t.equal(new URL(internal.url).origin, 'http://minio.internal:9000');
  t.not(new URL(internal.url).searchParams.get('X-Amz-Signature'), u.searchParams.get('X-Amz-Signature'));
});

t.test('request-time refusals carry reason codes', async (t) => {
  const p = cloudProvider(
    `  - name: s3
    kind: s3
    match: s3://data/
    credentials: { accessKeyId: AKID, secretAccessKey: "\${env:S}" }
    buckets: [{ name: data, prefixes: [images/] }]
    ttl: { default: 300s, max: 600s }
`,
    { S: 'x' },
  );
  t.teardown(() => p.close());
  const refusal = async (raw: string, ttl?: number) => {
    try {
      await p.presignFor(uri(raw), [], ttl ? { ttlSeconds: ttl } : {});
      return 'signed';
    } catch (err) {
      t.type(err, CloudRefusal);
      return (err as CloudRefusal).reason;
    }
  };
  t.equal(await refusal('s3://other/images/a.jpg'), 'bucket_not_allowed');
  t.equal(await refusal('s3://data/private/a.jpg'), 'key_not_allowed');
  t.equal(await refusal('s3://data/images-private/a.jpg'), 'key_not_allowed', 'prefix on a segment boundary');
  t.equal(await refusal('s3://data/images/'), 'key_not_allowed', 'a folder is not an object');
  t.equal(await refusal('s3://data/images/a.jpg', 601), 'ttl_too_long');
  t.equal(await refusal('s3://data/images/a.jpg', 600), 'signed');
});

t.test('config-time problems come with their paths', async (t) => {
  const problems = (providerYaml: string, env: Record<string, string> = {}) => {
    try {
      parseConfig(baseYaml(`providers:\n${providerYaml}`), { env: { KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN, ...env } });
      return [];
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.problems.map((p) => `${p.path}: ${p.message}`);
    }
  };
  const missing = problems(`  - { name: s, kind: s3, match: "s3://data/", credentials: { accessKeyId: A, secretAccessKey: "\${env:NOPE}" }, buckets: [{ name: data }] }\n`);
  t.match(missing.join('\n'), /providers\[0\]\.credentials\.secretAccessKey: environment variable NOPE is not set/);
  const inline = problems(`  - { name: s, kind: s3, match: "s3://data/", credentials: { accessKeyId: A, secretAccessKey: plain-text }, buckets: [{ name: data }] }\n`);
  t.match(inline.join('\n'), /providers\[0\]\.credentials\.secretAccessKey: must be a reference/);
  const ttl = problems(`  - { name: s, kind: s3, match: "s3://data/", credentials: { source: chain }, buckets: [{ name: data }], ttl: { default: 900s, max: 8d } }\n`.replace('8d', '691200s'));
  t.match(ttl.join('\n'), /providers\[0\]\.ttl\.max: at most 604800s/);
  const overMax = problems(`  - { name: s, kind: s3, match: "s3://data/", credentials: { source: chain }, buckets: [{ name: data }], ttl: { default: 900s, max: 600s } }\n`);
  t.match(overMax.join('\n'), /providers\[0\]\.ttl\.default: must not exceed ttl\.max/);
  const prefix = problems(`  - { name: s, kind: s3, match: "s3://data/", credentials: { source: chain }, buckets: [{ name: data, prefixes: [images] }] }\n`);
  t.match(prefix.join('\n'), /providers\[0\]\.buckets\[0\]\.prefixes\[0\]: must end with '\/'/);
  const scheme = problems(`  - { name: s, kind: s3, match: "gs://x/", credentials: { source: chain }, buckets: [{ name: data }] }\n`);
  t.match(scheme.join('\n'), /providers\[0\]\.match: must be a s3:\/\/ prefix/);
  const noBuckets = problems(`  - { name: s, kind: s3, match: "s3://", credentials: { source: chain }, buckets: [] }\n`);
  t.match(noBuckets.join('\n'), /providers\[0\]\.buckets: list at least one bucket/);
  const unlisted = problems(`  - { name: s, kind: s3, match: "s3://other/", credentials: { source: chain }, buckets: [{ name: data }] }\n`);
  t.match(unlisted.join('\n'), /providers\[0\]\.match: names bucket other, which the allowlist does not list/);
  const bare = problems(`  - { name: s, kind: s3, match: "s3://", credentials: { source: chain }, buckets: [{ name: data }] }\n`);
  t.match(bare.join('\n'), /providers\[0\]\.match: must name a bucket/);
});
