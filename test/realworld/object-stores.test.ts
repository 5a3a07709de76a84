// The real-upstream matrix, object stores: Keyhole's s3 and azure providers in proxy mode in
// front of s3rver (SigV4-verifying S3) and Azurite (Microsoft's Blob emulator), neither
// written here. The same cells as matrix.test.ts: 1 KiB, 1 MiB and a large object read
// whole, a Range, HEAD, slow readers (Keyhole pauses its read of the store), a client
// leaving mid-body; exact bytes, exactly one audit event per request, Keyhole alive after.
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { baseYaml, startKeyhole } from '../helpers/keyhole.ts';
import { testCerts } from '../helpers/certs.ts';
import { startS3rver, S3RVER_ENV } from '../fixtures/cloud/s3rver.ts';
import { startAzurite, AZURITE_ACCOUNT, AZURITE_KEY } from '../fixtures/cloud/azurite.ts';
import { rawRequest, SLOW_READERS } from './support/client.ts';
import { oneAudit } from './support/audit.ts';
import { slice, writeObjects, type Objects } from './support/objects.ts';

t.setTimeout(300_000);

const ca = readFileSync(testCerts().caCert);

interface Store {
  name: string;
  /** the large object's size: Azurite keeps blobs in memory (64 MiB extent limit) */
  large: number;
  /** starts the store, uploads the objects; the provider YAML, the env it needs, the URI of an object */
  start(t: Test, objects: Objects): Promise<{ provider: string; env: Record<string, string>; uri(name: string): string; scope: string }>;
}

const STORES: Store[] = [
  {
    name: 's3rver (s3, proxy mode)',
    large: 50 << 20,
    async start(t, objects) {
      const s3 = await startS3rver(['labels']);
      t.teardown(() => s3.close());
      for (const o of Object.values(objects)) await s3.put('labels', `img/${o.name}`, readFileSync(o.path));
      return {
        provider: s3.providerItem({ name: 'store', bucket: 'labels', prefixes: ['img/'] }),
        env: S3RVER_ENV,
        uri: (name) => `s3://labels/img/${name}`,
        scope: 's3://labels/img/',
      };
    },
  },
  {
    name: 'Azurite (azure, proxy mode)',
    large: 24 << 20,
    async start(t, objects) {
      const az = await startAzurite();
      t.teardown(() => az.close());
      await az.createContainer('labels');
      for (const o of Object.values(objects)) await az.put('labels', `img/${o.name}`, readFileSync(o.path));
      return {
        provider: `  - name: store
    kind: azure
    mode: proxy
    match: azure-blob://labels/
    account: ${AZURITE_ACCOUNT}
    accountKey: "\${env:AZ_KEY}"
    endpoint: ${az.endpoint}
    containers: [{ name: labels, prefixes: [img/] }]
`,
        env: { AZ_KEY: AZURITE_KEY },
        uri: (name) => `azure-blob://labels/img/${name}`,
        scope: 'azure-blob://labels/img/',
      };
    },
  },
];

for (const store of STORES) {
  t.test(store.name, async (t) => {
    const objects = writeObjects(t, { small: 1024, medium: 1 << 20, large: store.large });
    const s = await store.start(t, objects);
    const k = await startKeyhole(baseYaml(`providers:\n${s.provider}`), { env: s.env });
    t.teardown(() => k.close());
    const port = Number(new URL(k.base).port);
    const auth = { authorization: `Bearer ${await k.token({ scope: [s.scope] })}` };
    const data = (name: string) => `/v1/data?uri=${encodeURIComponent(s.uri(name))}`;
    const ask = (name: string, o: Omit<Parameters<typeof rawRequest>[0], 'port' | 'ca' | 'path'> = {}) => rawRequest({ port, ca, path: data(name), ...o, headers: { ...auth, ...o.headers } });

    for (const o of Object.values(objects)) {
      const what = `GET ${o.name}`;
      const r = await ask(o.name);
      t.equal(r.status, 200, what);
      t.ok(r.complete, `${what}: complete by its framing`);
      t.equal(r.sha256, o.sha256, `${what}: exact bytes`);
      t.match(await oneAudit(t, k.audits, r, what), { reason: 'ok', bytes: o.size, aborted: false }, `${what}: audited as served`);
    }

    const medium = objects.medium!;
    const range = await ask('medium', { headers: { range: 'bytes=100-199' } });
    t.equal(range.status, 206, 'Range: 206');
    t.equal(range.headers['content-range'], `bytes 100-199/${medium.size}`);
    t.same(range.body, slice(medium, 100, 199), 'Range: exact bytes');
    await oneAudit(t, k.audits, range, 'Range');

    const head = await ask('medium', { method: 'HEAD' });
    t.equal(head.status, 200, 'HEAD');
    t.equal(head.length, 0, 'HEAD: no body');
    t.equal(head.headers['content-length'], String(medium.size), 'HEAD: the length');
    await oneAudit(t, k.audits, head, 'HEAD');

    for (const reader of SLOW_READERS) {
      const what = `a client that ${reader.name}, large`;
      const r = await ask('large', { pace: reader.pace });
      t.equal(r.status, 200, what);
      t.ok(r.complete, `${what}: complete`);
      t.equal(r.sha256, objects.large!.sha256, `${what}: exact bytes`);
      await oneAudit(t, k.audits, r, what);
    }

    const left = await ask('large', { abortAfter: 256 * 1024 });
    t.match(await oneAudit(t, k.audits, left, 'client leaves mid-body'), { aborted: true }, 'the audit says the client left');

    const after = await ask('small');
    t.equal(after.sha256, objects.small!.sha256, 'Keyhole is alive and serving');
  });
}
