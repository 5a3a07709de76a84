// azure SAS against the SDK-derived cases (Microsoft's @azure/storage-blob 12.32), plus
// URI forms, https-only, and config-time problems with paths.
import t from 'tap';
import { serviceSas } from '../../src/providers/cloud/azure-sas.ts';
import { ConfigError, parseConfig } from '../../src/config/load.ts';
import { CloudRefusal } from '../../src/providers/cloud/errors.ts';
import { baseYaml, TEST_SECRET, ADMIN_TOKEN } from '../helpers/keyhole.ts';
import { cloudProvider, uri, vector } from '../fixtures/cloud/vectors.ts';
import { accountSas } from '../fixtures/cloud/azurite.ts';

const v = vector('azure/azure-sas-sdk-derived.json');
const ms = (iso?: string) => (iso ? Date.parse(iso) : undefined);

t.test('service SAS: every SDK-derived service case, query byte for byte', async (t) => {
  const service = (v.cases as any[]).filter((c) => c.kind === 'service');
  t.equal(service.length, 5);
  for (const c of service) {
    const i = c.input;
    const out = serviceSas({
      account: v.account,
      accountKey: Buffer.from(v.accountKey, 'base64'),
      container: i.containerName,
      blob: i.blobName,
      permissions: i.permissions,
      startsOn: ms(i.startsOn),
      expiresOn: ms(i.expiresOn)!,
      protocol: i.protocol,
      version: i.version,
      ipRange: i.ipRange,
      cacheControl: i.cacheControl,
      contentDisposition: i.contentDisposition,
      contentType: i.contentType,
    });
    t.equal(out.signature, c.expectedSig, `${c.name}: signature`);
    t.equal(out.query, c.expectedQuery, `${c.name}: query`);
  }
});

t.test('the account SAS the azurite fixture uses matches the SDK-derived account case', async (t) => {
  const c = (v.cases as any[]).find((x) => x.kind === 'account');
  const i = c.input;
  const out = accountSas({ account: v.account, key: v.accountKey, permissions: i.permissions, services: i.services, resourceTypes: i.resourceTypes, startsOn: ms(i.startsOn), expiresOn: ms(i.expiresOn)!, protocol: i.protocol, version: i.version });
  t.equal(out.query, c.expectedQuery);
});

const env = { AZ_KEY: v.accountKey };

t.test('the provider: read-only SAS, https only, both URI forms, overrides', async (t) => {
  const p = cloudProvider(
    `  - name: az
    kind: azure
    match: https://devstoreaccount1.blob.core.windows.net/
    account: devstoreaccount1
    accountKey: "\${env:AZ_KEY}"
    containers: [{ name: cont1, prefixes: [dir/] }]
    response: { contentDisposition: attachment }
    stable: { window: 30s, minRemaining: 60s }
`,
    env,
  );
  t.teardown(() => p.close());
  const now = new Date('2024-01-01T00:00:10Z');
  const signed = await p.presignFor(uri('https://devstoreaccount1.blob.core.windows.net/cont1/dir/hello.txt'), [], { now, ttlSeconds: 3600 });
  const u = new URL(signed.url);
  t.equal(u.origin + u.pathname, 'https://devstoreaccount1.blob.core.windows.net/cont1/dir/hello.txt');
  t.equal(u.searchParams.get('sp'), 'r', 'read only');
  t.equal(u.searchParams.get('spr'), 'https', 'https only');
  t.equal(u.searchParams.get('sr'), 'b');
  t.equal(u.searchParams.get('se'), '2024-01-01T01:00:00Z', 'signed at the window start (00:00:00), plus the TTL');
  t.equal(u.searchParams.get('rscd'), 'attachment; filename="hello.txt"');
  t.equal(u.searchParams.get('st'), null, 'no start time: valid at once, whatever the clock skew');
  // Same inputs as the SDK case "blob-read-sv2022-11-02" minus st: recompute independently of the provider.
  const expected = serviceSas({ account: 'devstoreaccount1', accountKey: Buffer.from(v.accountKey, 'base64'), container: 'cont1', blob: 'dir/hello.txt', permissions: 'r', expiresOn: Date.parse('2024-01-01T01:00:00Z'), protocol: 'https', version: '2022-11-02', contentDisposition: 'attachment; filename="hello.txt"' });
  t.equal(signed.url.slice(signed.url.indexOf('?') + 1), expected.query);

  for (const [raw, reason] of [
    ['https://devstoreaccount1.blob.core.windows.net/cont2/dir/x', 'bucket_not_allowed'],
    ['https://devstoreaccount1.blob.core.windows.net/cont1/other/x', 'key_not_allowed'],
    ['https://devstoreaccount1.blob.core.windows.net/cont1', 'key_not_allowed'],
  ] as const) {
    const err = await p.presignFor(uri(raw), []).then(() => undefined, (e: unknown) => e);
    t.ok(err instanceof CloudRefusal && err.reason === reason, `${raw}: ${reason}`);
  }
});

t.test('azure config problems with paths', async (t) => {
  const problems = (providerYaml: string) => {
    try {
      parseConfig(baseYaml(`providers:\n${providerYaml}`), { env: { KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN, AZ_KEY: v.accountKey, NOT_B64: 'not base64!' } });
      return '';
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.problems.map((p) => `${p.path}: ${p.message}`).join('\n');
    }
  };
  const ok = '  - { name: a, kind: azure, match: "azure-blob://cont1/", account: acct1, accountKey: "${env:AZ_KEY}", containers: [{ name: cont1 }]';
  t.equal(problems(`${ok} }\n`), '');
  t.match(problems(`${ok}, endpoint: "http://blob.internal:10000/acct1" }\n`), /providers\[0\]\.endpoint: must be https:\/\/ unless the host is loopback/);
  t.equal(problems(`${ok}, endpoint: "http://127.0.0.1:10000/acct1" }\n`), '', 'loopback http is fine (Azurite)');
  t.match(problems(ok.replace('${env:AZ_KEY}', '${env:NOT_B64}') + ' }\n'), /providers\[0\]\.accountKey: env:NOT_B64 is not a base64 account key/);
  t.match(problems(ok.replace('${env:AZ_KEY}', '${env:MISSING_KEY}') + ' }\n'), /providers\[0\]\.accountKey: environment variable MISSING_KEY is not set/);
  t.match(problems(ok.replace('azure-blob://cont1/', 'https://other.blob.core.windows.net/') + ' }\n'), /providers\[0\]\.match: an https:\/\/ prefix must name acct1\.blob\.core\.windows\.net/);
  t.match(problems(`${ok}, ttl: { default: 60s, max: 30s } }\n`), /providers\[0\]\.ttl\.default: must not exceed ttl\.max/);
  // An identity instead of the key: exactly one of the two; its own fields checked with paths.
  const keyless = '  - { name: a, kind: azure, match: "azure-blob://cont1/", account: acct1, containers: [{ name: cont1 }]';
  t.equal(problems(`${keyless}, identity: { kind: managed } }\n`), '', 'a managed identity, no key');
  // The provider is built as part of the check, as serve builds it: it needs the variables the webhook sets.
  t.match(problems(`${keyless}, identity: { kind: workload } }\n`), /^providers\[0\]: .*clientId is a required parameter/, 'workload identity without the AKS webhook\'s environment: refused, as serve would');
  Object.assign(process.env, { AZURE_CLIENT_ID: '00000000-0000-0000-0000-000000000001', AZURE_TENANT_ID: '00000000-0000-0000-0000-000000000002', AZURE_FEDERATED_TOKEN_FILE: '/var/run/secrets/azure/tokens/azure-identity-token' });
  t.teardown(() => {
    for (const k of ['AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_FEDERATED_TOKEN_FILE']) delete process.env[k];
  });
  t.equal(problems(`${keyless}, identity: { kind: workload } }\n`), '', 'workload identity from the AKS webhook\'s environment');
  t.match(problems(`${keyless} }\n`), /providers\[0\]\.accountKey: give exactly one of accountKey \(service SAS\) and identity/);
  t.match(problems(`${ok}, identity: { kind: managed } }\n`), /give exactly one of accountKey/);
  t.match(problems(`${keyless}, identity: { kind: clientSecret, tenantId: t } }\n`), /providers\[0\]\.identity\.clientId/);
  t.match(problems(`${keyless}, identity: { kind: clientSecret, tenantId: t, clientId: c, clientSecret: x, authorityHost: "http://login.example" } }\n`), /providers\[0\]\.identity\.authorityHost: must be an https:\/\/ URL/);
  t.match(problems(`${keyless}, identity: { kind: managed }, delegationKey: { lifetime: 200h } }\n`), /providers\[0\]\.delegationKey\.lifetime: a user delegation key lasts at most 7 days/);
  t.match(problems(`${keyless}, endpoint: nope, identity: { kind: managed } }\n`), /providers\[0\]\.endpoint/, 'a malformed endpoint with no key: one problem with its path, no throw');
});
