// A browser loading a data answer as a script, worker, service worker, worklet, stylesheet,
// XSLT or manifest says so (Sec-Fetch-Dest; a service worker's script fetch also sends
// Service-Worker: script). Such a load is refused with 403 data_destination_refused before
// authentication and before any upstream is asked, on every provider kind (presign mode
// included: no redirect is handed out). Images, media, fetch(), documents, JSON modules and
// clients that send no Fetch metadata (curl, SDKs) are served as before.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startUpstream } from '../helpers/upstream.ts';
import { Agent, request } from 'undici';
import { testCerts } from '../helpers/certs.ts';
import { auditFor, baseYaml, dataUrl, startKeyhole } from '../helpers/keyhole.ts';

const REFUSED = ['script', 'worker', 'sharedworker', 'serviceworker', 'style', 'paintworklet', 'audioworklet', 'sharedstorageworklet', 'xslt', 'manifest', 'SCRIPT'];
const SERVED = ['image', 'audio', 'video', 'track', 'empty', 'document', 'iframe', 'frame', 'json', 'font', 'object', 'embed', 'unknown-future'];

t.test('script-like destinations are refused before anyone is asked; data loads are served', async (t) => {
  const up = await startUpstream({ objects: { '/files/a.js': { body: 'document.title=1', type: 'text/javascript' } } });
  t.teardown(() => up.close());
  const root = mkdtempSync(join(tmpdir(), 'keyhole-dest-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  writeFileSync(join(root, 'a.txt'), 'plain');
  const k = await startKeyhole(
    baseYaml(`providers:
  - { name: corp, kind: http, match: "https://data.corp/", baseUrl: "${up.origin}/files/", allowPrivateNetworks: true }
  - { name: files, kind: local, match: "local://files/", root: ${root} }
  - name: bucket
    kind: s3
    mode: presign
    match: s3://bucket1/
    endpoint: https://s3.example.test
    pathStyle: true
    region: us-east-1
    credentials: { accessKeyId: AKIDEXAMPLE, secretAccessKey: "\${env:S3_SECRET}" }
    buckets: [{ name: bucket1 }]
`),
    { env: { S3_SECRET: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' } },
  );
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['https://data.corp/', 'local://files/', 's3://bucket1/'] });
  const auth = { authorization: `Bearer ${token}` };

  for (const dest of REFUSED) {
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await k.get(dataUrl('https://data.corp/a.js'), { ...auth, 'sec-fetch-dest': dest }, method);
      t.equal(res.status, 403, `${method} Sec-Fetch-Dest ${JSON.stringify(dest)}: 403`);
      if (method === 'GET') t.equal(JSON.parse(res.body.toString()).error, 'data_destination_refused', `Sec-Fetch-Dest ${JSON.stringify(dest)}: its reason`);
    }
  }
  // HTTP/1.1 trims the whitespace around a value: ' style ' is 'style'. (HTTP/2 drops a padded
  // field as malformed, RFC 9113 §8.2.1; no browser sends one.)
  const h1 = new Agent({ allowH2: false, connect: { ca: readFileSync(testCerts().caCert) } });
  t.teardown(() => h1.close());
  const padded = await request(k.base + dataUrl('https://data.corp/a.js'), { headers: { ...auth, 'sec-fetch-dest': ' style ' }, dispatcher: h1 });
  t.equal(padded.statusCode, 403, 'HTTP/1.1, Sec-Fetch-Dest " style ": 403');
  t.equal(((await padded.body.json()) as { error: string }).error, 'data_destination_refused');
  // Revalidation and ranges are the same load: refused as well.
  const cond = await k.get(dataUrl('https://data.corp/a.js'), { ...auth, 'sec-fetch-dest': 'script', 'if-none-match': '"x"', range: 'bytes=0-3' });
  t.equal(cond.status, 403, 'a conditional Range request for a script: 403');
  const sw = await k.get(dataUrl('https://data.corp/a.js'), { ...auth, 'service-worker': 'script' });
  t.equal(sw.status, 403, 'Service-Worker: script alone: 403');
  t.equal(up.log.length, 0, 'the upstream was never asked');

  // Before authentication: no token, a bad one, and the answer is the same refusal.
  const anonymous = await k.get(dataUrl('https://data.corp/a.js'), { 'sec-fetch-dest': 'worker' });
  t.equal(anonymous.status, 403, 'without a token: refused for what it is, not asked for one');
  const audit = await auditFor(k, anonymous.headers['x-request-id'] as string);
  t.match(audit, { decision: 'deny', reason: 'data_destination_refused', status: 403, uri: 'https://data.corp/a.js', detail: 'Sec-Fetch-Dest: worker' }, 'audited with the load it was');

  // Every provider kind: the refusal comes first.
  const local = await k.get(dataUrl('local://files/a.txt'), { ...auth, 'sec-fetch-dest': 'script' });
  t.equal(local.status, 403, 'local: 403');
  const presigned = await k.get(dataUrl('s3://bucket1/evil.js'), { ...auth, 'sec-fetch-dest': 'script' });
  t.equal(presigned.status, 403, 'presign mode: 403, no redirect to the bucket');
  t.equal(presigned.headers.location, undefined, 'no Location handed out');

  for (const dest of SERVED) {
    const res = await k.get(dataUrl('https://data.corp/a.js'), { ...auth, 'sec-fetch-dest': dest });
    t.equal(res.status, 200, `Sec-Fetch-Dest ${dest}: served`);
    t.equal(res.headers['content-type'], 'text/plain', `Sec-Fetch-Dest ${dest}: as text/plain, never as script`);
  }
  const plain = await k.get(dataUrl('https://data.corp/a.js'), auth);
  t.equal(plain.status, 200, 'no Fetch metadata (curl, SDKs): served');
  t.equal(plain.body.toString(), 'document.title=1', 'the bytes as stored');
  t.equal((await k.get(dataUrl('local://files/a.txt'), { ...auth, 'sec-fetch-dest': 'image' })).status, 200, 'local, as an image load: served');
  const redirect = await k.get(dataUrl('s3://bucket1/cat.png'), { ...auth, 'sec-fetch-dest': 'image' });
  t.equal(redirect.status, 307, 'presign mode, as an image load: redirected');
  t.equal(up.log.length, SERVED.length + 1, 'the upstream saw only the served loads');
});
