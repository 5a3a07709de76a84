// azure end to end through a real Keyhole against Azurite: the emulator accepts Keyhole's
// SAS and rejects it tampered, expired or used to write; presign mode (307) and proxy
// mode, each with a Range request and a HEAD, for both URI forms.
import t from 'tap';
import { request } from 'undici';
import { auditFor, baseYaml, dataUrl, keyholeWith, startKeyhole } from '../helpers/keyhole.ts';
import { cloudProvider, uri } from '../fixtures/cloud/vectors.ts';
import { startAzurite, AZURITE_ACCOUNT, AZURITE_KEY } from '../fixtures/cloud/azurite.ts';

const BODY = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 13) % 256));
const az = await startAzurite();
t.teardown(() => az.close());
await az.createContainer('labels');
await az.createContainer('private');
await az.put('labels', 'img/a b.png', BODY, 'image/png');
await az.put('private', 'img/x.png', 'secret');

const env = { AZ_KEY: AZURITE_KEY };
const yaml = (mode: string, match = 'azure-blob://labels/', extra = '') => `  - name: az-${mode}
    kind: azure
    mode: ${mode}
    match: ${match}
    account: ${AZURITE_ACCOUNT}
    accountKey: "\${env:AZ_KEY}"
    endpoint: ${az.endpoint}
    containers: [{ name: labels, prefixes: [img/] }]
${extra}`;

const fetchUrl = async (url: string, method: 'GET' | 'HEAD' | 'PUT' = 'GET', headers: Record<string, string> = {}, body?: string) => {
  const res = await request(url, { method, headers, reset: true, ...(body !== undefined ? { body } : {}) });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
};

t.test('Azurite accepts the SAS and rejects it tampered, expired or used to write', async (t) => {
  const p = cloudProvider(yaml('presign'), env);
  t.teardown(() => p.close());
  const good = (await p.presignFor(uri('azure-blob://labels/img/a b.png'), [])).url;
  t.match(good, /[?&]spr=https%2Chttp&/, 'http allowed only because the endpoint is loopback');
  const ok = await fetchUrl(good);
  t.equal(ok.status, 200);
  t.same(ok.body, BODY);
  const sig = /[?&]sig=([^&]+)/.exec(good)![1]!;
  const flipped = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
  t.equal((await fetchUrl(good.replace(sig, flipped))).status, 403, 'tampered signature');
  t.equal((await fetchUrl(good.replace('sp=r', 'sp=rw'))).status, 403, 'permissions widened');
  t.equal((await fetchUrl(good.replace('/labels/', '/private/').replace('a%20b.png', 'x.png'))).status, 403, 'another container with the same SAS');
  t.equal((await fetchUrl(good, 'PUT', { 'x-ms-blob-type': 'BlockBlob' }, 'overwrite')).status, 403, 'read-only: no write');
  const expired = (await p.presignFor(uri('azure-blob://labels/img/a b.png'), [], { now: new Date(Date.now() - 7_200_000) })).url;
  t.equal((await fetchUrl(expired)).status, 403, 'expired');
  t.same((await fetchUrl(good)).body, BODY, 'the blob is untouched');
});

t.test('response overrides (rsct, rscd) are signed and honoured by Azurite', async (t) => {
  const p = cloudProvider(yaml('presign', 'azure-blob://labels/', '    response: { contentType: byExtension, contentDisposition: inline }\n'), env);
  t.teardown(() => p.close());
  await az.put('labels', 'img/mislabelled.jpg', 'jpeg bytes', 'application/octet-stream');
  const res = await fetchUrl((await p.presignFor(uri('azure-blob://labels/img/mislabelled.jpg'), [])).url);
  t.equal(res.status, 200);
  t.equal(res.headers['content-type'], 'image/jpeg', 'the type by extension replaces the stored one');
  t.equal(res.headers['content-disposition'], 'inline; filename="mislabelled.jpg"');
});

t.test('presign mode: 307 to a SAS URL Azurite serves, Range and HEAD, both URI forms', async (t) => {
  const { k, auth } = await keyholeWith(t, `providers:\n${yaml('presign')}`, ['azure-blob://labels/'], { env });
  const res = await k.get(dataUrl('azure-blob://labels/img/a b.png'), auth);
  t.equal(res.status, 307);
  t.equal(res.headers['cache-control'], 'private, no-store');
  const loc = res.headers.location as string;
  t.ok(loc.startsWith(`${az.endpoint}/labels/img/a%20b.png?`));
  const ask = async () => (await k.get(dataUrl('azure-blob://labels/img/a b.png'), auth)).headers.location as string;
  // Two asks can straddle a signing-window edge; then ask again (no pair holds two edges).
  let [first, second] = [loc, await ask()];
  if (first !== second) [first, second] = [second, await ask()];
  t.equal(second, first, 'stable URL');
  const part = await fetchUrl(loc, 'GET', { range: 'bytes=10-19' });
  t.equal(part.status, 206);
  t.same(part.body, BODY.subarray(10, 20));
  const head = await k.get(dataUrl('azure-blob://labels/img/a b.png'), auth, 'HEAD');
  t.equal(head.status, 307);
  const headed = await fetchUrl(head.headers.location as string, 'HEAD');
  t.equal(headed.status, 200);
  t.equal(headed.headers['content-length'], String(BODY.length));
  const denied = await k.get(dataUrl('azure-blob://labels/other/a.png'), auth);
  t.equal(denied.status, 403);
  t.equal(JSON.parse(denied.body.toString()).error, 'key_not_allowed');
  t.notOk(k.rawLogs().includes(/[?&]sig=([^&]+)/.exec(loc)![1]!), 'no SAS signature in logs');
  t.notOk(k.rawLogs().includes(AZURITE_KEY), 'no account key in logs');
});

t.test('proxy mode: signed by Keyhole, streamed from Azurite, Range and HEAD', async (t) => {
  const k = await startKeyhole(baseYaml(`providers:\n${yaml('proxy', `https://${AZURITE_ACCOUNT}.blob.core.windows.net/`)}`), { env });
  t.teardown(() => k.close());
  const u = `https://${AZURITE_ACCOUNT}.blob.core.windows.net/labels/img/a b.png`;
  const token = await k.token({ scope: [`https://${AZURITE_ACCOUNT}.blob.core.windows.net/labels/`] });
  const auth = { authorization: `Bearer ${token}` };
  const full = await k.get(dataUrl(u), auth);
  t.equal(full.status, 200);
  t.same(full.body, BODY);
  t.equal(full.headers['content-type'], 'image/png');
  t.equal(full.headers['x-ms-request-id'], undefined, 'Azure headers are not relayed');
  const part = await k.get(dataUrl(u), { ...auth, range: 'bytes=4900-' });
  t.equal(part.status, 206);
  t.same(part.body, BODY.subarray(BODY.length - 100));
  const head = await k.get(dataUrl(u), auth, 'HEAD');
  t.equal(head.status, 200);
  t.equal(head.headers['content-length'], String(BODY.length));
  t.equal(head.body.length, 0);
  const missing = await k.get(dataUrl(`https://${AZURITE_ACCOUNT}.blob.core.windows.net/labels/img/none.png`), auth);
  t.equal(missing.status, 404);
  const otherContainer = await k.get(dataUrl(`https://${AZURITE_ACCOUNT}.blob.core.windows.net/private/img/x.png`), { authorization: `Bearer ${await k.token({ scope: [`https://${AZURITE_ACCOUNT}.blob.core.windows.net/`] })}` });
  t.equal(JSON.parse(otherContainer.body.toString()).error, 'bucket_not_allowed');
  const audit = await auditFor(k, full.headers['x-request-id'] as string);
  t.match(audit, { provider: 'az-proxy', decision: 'allow', reason: 'ok', status: 200, bytes: BODY.length });
});

t.test('proxy mode with a wrong account key: Azurite refuses, Keyhole answers 502', async (t) => {
  const wrongKey = Buffer.alloc(64, 1).toString('base64');
  const k = await startKeyhole(baseYaml(`providers:\n${yaml('proxy')}`), { env: { AZ_KEY: wrongKey } });
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['azure-blob://labels/'] });
  const res = await k.get(dataUrl('azure-blob://labels/img/a b.png'), { authorization: `Bearer ${token}` });
  t.equal(res.status, 502);
  t.equal(JSON.parse(res.body.toString()).error, 'upstream_status');
});
