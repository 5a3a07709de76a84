// azure with an Entra ID identity and no account key: user delegation SAS. The SAS is
// compared byte for byte with @azure/storage-blob's generateBlobSASQueryParameters given the
// same user delegation key; then a real Keyhole (spawned, trusting the test CA) gets a token
// from a loopback Entra ID stand-in (test/fixtures/cloud/entra.ts), a user delegation key from
// Azurite over HTTPS with OAuth (--oauth basic), and signs URLs Azurite verifies, in presign
// and proxy mode. A wrong client secret: refused credentials_unavailable, the secret in no log.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { BlobSASPermissions, generateBlobSASQueryParameters, SASProtocol, type UserDelegationKey as SdkKey } from '@azure/storage-blob';
import { userDelegationSas, type UserDelegationKey } from '../../src/providers/cloud/azure-sas.ts';
import { baseYaml, dataUrl } from '../helpers/keyhole.ts';
import { spawnKeyhole } from '../helpers/spawn.ts';
import { testCerts } from '../helpers/certs.ts';
import { AZURITE_ACCOUNT, startAzurite } from '../fixtures/cloud/azurite.ts';
import { startEntra } from '../fixtures/cloud/entra.ts';

const KEY: UserDelegationKey = {
  signedObjectId: '3b1e6f5c-2f51-4a8e-9a4e-0f4c9b7a1d22',
  signedTenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47',
  signedStart: '2026-12-03T10:00:00Z',
  signedExpiry: '2026-12-04T10:00:00Z',
  signedService: 'b',
  signedVersion: '2022-11-02',
  value: Buffer.from('a user delegation key value, 32+ bytes long').toString('base64'),
};

t.test('user delegation SAS: byte for byte what @azure/storage-blob builds with the same key', async (t) => {
  const sdkKey: SdkKey = { ...KEY, signedStartsOn: new Date(KEY.signedStart), signedExpiresOn: new Date(KEY.signedExpiry) };
  const cases = [
    { blob: 'img/a b.png', protocol: 'https' as const },
    { blob: 'scans/ünïcode/x.tif', protocol: 'https,http' as const, contentType: 'image/tiff', contentDisposition: 'inline' },
    { blob: 'a', protocol: 'https' as const, startsOn: Date.parse('2026-12-03T11:00:00Z') },
  ];
  for (const c of cases) {
    const expiresOn = Date.parse('2026-12-03T12:34:56Z');
    const sdk = generateBlobSASQueryParameters(
      {
        containerName: 'labels',
        blobName: c.blob,
        permissions: BlobSASPermissions.parse('r'),
        expiresOn: new Date(expiresOn),
        ...(c.startsOn !== undefined ? { startsOn: new Date(c.startsOn) } : {}),
        protocol: c.protocol === 'https' ? SASProtocol.Https : SASProtocol.HttpsAndHttp,
        version: '2022-11-02',
        ...(c.contentType ? { contentType: c.contentType } : {}),
        ...(c.contentDisposition ? { contentDisposition: c.contentDisposition } : {}),
      },
      sdkKey,
      'labelsaccount',
    ).toString();
    const ours = userDelegationSas({
      account: 'labelsaccount',
      container: 'labels',
      blob: c.blob,
      permissions: 'r',
      expiresOn,
      startsOn: c.startsOn,
      protocol: c.protocol,
      version: '2022-11-02',
      contentType: c.contentType,
      contentDisposition: c.contentDisposition,
      key: KEY,
    }).query;
    t.equal(ours, sdk, `${c.blob}: the same query, byte for byte`);
  }
});

t.test('end to end: Entra ID token → user delegation key from Azurite → SAS Azurite verifies', async (t) => {
  const certs = testCerts();
  const tenantId = '72f988bf-86f1-41af-91ab-2d7cd011db47';
  const clientId = '1950a258-227b-4e31-a9cf-717495945fc2';
  const clientSecret = 'entra-client-secret-never-logged';
  const entra = await startEntra({ tenantId, clientId, clientSecret, objectId: '3b1e6f5c-2f51-4a8e-9a4e-0f4c9b7a1d22', tls: { cert: certs.serverCert, key: certs.serverKey } });
  t.teardown(() => entra.close());
  const az = await startAzurite({ https: { cert: certs.serverCert, key: certs.serverKey, ca: certs.caCert } });
  t.teardown(() => az.close());
  const BODY = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) % 256));
  await az.createContainer('labels');
  await az.put('labels', 'img/a b.png', BODY, 'image/png');
  const trusting = new Agent({ connect: { ca: readFileSync(certs.caCert) } });
  t.teardown(() => trusting.close());

  const item = (name: string, mode: 'presign' | 'proxy', secretEnv = 'AZ_SECRET') => `  - name: ${name}
    kind: azure
    mode: ${mode}
    match: azure-blob://${name}/
    account: ${AZURITE_ACCOUNT}
    endpoint: ${az.endpoint}
    identity: { kind: clientSecret, tenantId: ${tenantId}, clientId: ${clientId}, clientSecret: "\${env:${secretEnv}}", authorityHost: ${entra.authorityHost} }
    containers: [{ name: labels }]
    tls: { ca: ${certs.caCert} }
`;
  // The URI names the container: match prefixes differ by provider only through the container.
  const yaml = baseYaml(`providers:\n${item('labels', 'presign')}`, { log: '{ level: info }' });
  const k = await spawnKeyhole(yaml, { env: { AZ_SECRET: clientSecret, NODE_EXTRA_CA_CERTS: certs.caCert } });
  t.teardown(() => k.stop());
  const auth = { authorization: `Bearer ${await k.token({ scope: ['azure-blob://labels/'] })}` };

  const res = await k.get(dataUrl('azure-blob://labels/img/a b.png'), { headers: auth });
  t.equal(res.status, 307, 'presign: a redirect');
  const location = String(res.headers.location);
  const q = new URL(location).searchParams;
  t.equal(q.get('skoid'), '3b1e6f5c-2f51-4a8e-9a4e-0f4c9b7a1d22', 'signed with a key bound to the service principal');
  t.equal(q.get('sktid'), tenantId);
  t.equal(q.get('sp'), 'r');
  const got = await request(location, { dispatcher: trusting });
  t.equal(got.statusCode, 200, 'Azurite accepts the user delegation SAS');
  t.same(Buffer.from(await got.body.arrayBuffer()), BODY);
  const sig = q.get('sig')!;
  const tampered = await request(location.replace(encodeURIComponent(sig), encodeURIComponent((sig[0] === 'A' ? 'B' : 'A') + sig.slice(1))), { dispatcher: trusting });
  await tampered.body.dump();
  t.equal(tampered.statusCode, 403, 'and refuses it tampered');
  t.equal(entra.tokenRequests.length, 1, 'one token');
  t.match(entra.tokenRequests[0], { status: 200, fields: { client_id: clientId, grant_type: 'client_credentials', scope: 'https://storage.azure.com/.default' } });
  t.notOk(k.output().includes(clientSecret), 'the client secret is in no log line');
  t.notOk(/"sig":|sig=/.test(k.output()), 'nor a signature');
});

t.test('proxy mode reads with the OAuth token; a wrong client secret: refused, not ready, logged', async (t) => {
  const certs = testCerts();
  const tenantId = '72f988bf-86f1-41af-91ab-2d7cd011db47';
  const clientId = '1950a258-227b-4e31-a9cf-717495945fc2';
  const entra = await startEntra({ tenantId, clientId, clientSecret: 'right-secret', objectId: 'f0e1d2c3-0000-4000-8000-000000000001', tls: { cert: certs.serverCert, key: certs.serverKey } });
  t.teardown(() => entra.close());
  const az = await startAzurite({ https: { cert: certs.serverCert, key: certs.serverKey, ca: certs.caCert } });
  t.teardown(() => az.close());
  const BODY = Buffer.from('proxied bytes, keyless');
  await az.createContainer('labels');
  await az.put('labels', 'a.txt', BODY, 'text/plain');
  await az.createContainer('other');
  await az.put('other', 'a.txt', BODY, 'text/plain');
  const item = (container: string, secretEnv: string) => `  - name: ${container}
    kind: azure
    mode: proxy
    match: azure-blob://${container}/
    account: ${AZURITE_ACCOUNT}
    endpoint: ${az.endpoint}
    identity: { kind: clientSecret, tenantId: ${tenantId}, clientId: ${clientId}, clientSecret: "\${env:${secretEnv}}", authorityHost: ${entra.authorityHost} }
    containers: [{ name: ${container} }]
    tls: { ca: ${certs.caCert} }
`;
  const yaml = baseYaml(`providers:\n${item('labels', 'GOOD')}${item('other', 'BAD')}`);
  const k = await spawnKeyhole(yaml, { env: { GOOD: 'right-secret', BAD: 'a-wrong-secret', NODE_EXTRA_CA_CERTS: certs.caCert } });
  t.teardown(() => k.stop());
  const auth = { authorization: `Bearer ${await k.token({ scope: ['azure-blob://labels/', 'azure-blob://other/'] })}` };
  const ok = await k.get(dataUrl('azure-blob://labels/a.txt'), { headers: auth });
  t.equal(ok.status, 200, 'proxy mode: Keyhole fetched it with a user delegation SAS');
  t.same(ok.body, BODY);
  const ranged = await k.get(dataUrl('azure-blob://labels/a.txt'), { headers: { ...auth, range: 'bytes=0-6' } });
  t.equal(ranged.status, 206);
  t.same(ranged.body, BODY.subarray(0, 7));
  const bad = await k.get(dataUrl('azure-blob://other/a.txt'), { headers: auth });
  t.equal(bad.status, 502, 'a wrong client secret: no key, no answer');
  t.equal(JSON.parse(bad.body.toString()).error, 'credentials_unavailable');
  t.ok(entra.tokenRequests.some((r) => r.status === 401), 'the stand-in refused the secret');
  const metrics = (await k.adminGet('/metrics')).text;
  t.match(metrics, /^keyhole_cloud_credential_fetches_total\{provider="labels",result="ok"\} 0$/m, 'proxy mode fetched no user delegation key: it read with the token');
  t.match(metrics, /^keyhole_cloud_credentials_up\{provider="labels"\} 1$/m);
  t.match(metrics, /^keyhole_cloud_credentials_up\{provider="other"\} 0$/m);
  const ready = await k.adminGet('/readyz');
  t.equal(ready.status, 503, 'not ready while a provider has no credentials');
  t.match(JSON.parse(ready.text), { credentials: false });
  // The warn line is written when the start-up attempt fails, which may be after /readyz reads its state: wait for it.
  const warned = await k.waitForLog((l) => /provider other: no usable credentials from its identity yet/.test(String(l.msg)), 10_000, 'the start-up warning').catch(() => undefined);
  t.match(String(warned?.msg), /AADSTS7000215/, 'the start-up log says which provider and why');
  t.notOk(k.output().includes('a-wrong-secret') || k.output().includes('right-secret'), 'no client secret in the output');
});

t.test('workload identity (a federated token file) and a managed identity (App Service endpoint), presign mode', async (t) => {
  const certs = testCerts();
  const tenantId = '72f988bf-86f1-41af-91ab-2d7cd011db47';
  const clientId = '1950a258-227b-4e31-a9cf-717495945fc2';
  const federatedToken = 'eyJhbGciOiJSUzI1NiJ9.a-kubernetes-service-account-token.sig';
  const identityHeader = 'app-service-identity-header-value';
  const entra = await startEntra({ tenantId, clientId, clientSecret: 'unused', objectId: 'a1b2c3d4-0000-4000-8000-00000000000a', tls: { cert: certs.serverCert, key: certs.serverKey }, federatedToken, identityHeader });
  t.teardown(() => entra.close());
  const az = await startAzurite({ https: { cert: certs.serverCert, key: certs.serverKey, ca: certs.caCert } });
  t.teardown(() => az.close());
  const BODY = Buffer.from('keyless, two more ways');
  for (const c of ['wlid', 'midc']) {
    await az.createContainer(c);
    await az.put(c, 'a.txt', BODY, 'text/plain');
  }
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-wi-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, 'azure-identity-token');
  writeFileSync(tokenFile, federatedToken);
  const item = (name: string, identity: string) => `  - name: ${name}
    kind: azure
    mode: presign
    match: azure-blob://${name}/
    account: ${AZURITE_ACCOUNT}
    endpoint: ${az.endpoint}
    identity: ${identity}
    containers: [{ name: ${name} }]
    tls: { ca: ${certs.caCert} }
`;
  const yaml = baseYaml(
    `providers:\n${item('wlid', `{ kind: workload, tenantId: ${tenantId}, clientId: ${clientId}, tokenFilePath: ${tokenFile}, authorityHost: ${entra.authorityHost} }`)}${item('midc', '{ kind: managed }')}`,
  );
  const k = await spawnKeyhole(yaml, { env: { NODE_EXTRA_CA_CERTS: certs.caCert, IDENTITY_ENDPOINT: entra.identityEndpoint, IDENTITY_HEADER: identityHeader } });
  t.teardown(() => k.stop());
  const trusting = new Agent({ connect: { ca: readFileSync(certs.caCert) } });
  t.teardown(() => trusting.close());
  const auth = { authorization: `Bearer ${await k.token({ scope: ['azure-blob://wlid/', 'azure-blob://midc/'] })}` };
  for (const name of ['wlid', 'midc']) {
    const res = await k.get(dataUrl(`azure-blob://${name}/a.txt`), { headers: auth });
    t.equal(res.status, 307, `${name}: a redirect`);
    const got = await request(String(res.headers.location), { dispatcher: trusting });
    t.equal(got.statusCode, 200, `${name}: Azurite accepts the user delegation SAS`);
    t.same(Buffer.from(await got.body.arrayBuffer()), BODY);
  }
  t.ok(entra.tokenRequests.some((r) => r.status === 200 && r.fields.client_assertion === federatedToken), 'workload identity: the federated token was the client assertion');
  t.ok(entra.tokenRequests.some((r) => r.status === 200 && r.fields.via === 'managed'), 'managed identity: the platform endpoint with its header');
  t.notOk(k.output().includes(federatedToken) || k.output().includes(identityHeader), 'neither the federated token nor the identity header in the output');
});
