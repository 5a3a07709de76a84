// The shared cloud-provider layer: minted-URL cache hits within a window, credential
// failures become credentials_unavailable (502) with no secret in the message, and the
// `keyhole presign` command prints the URL alone on stdout.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cloudProvider, uri, vector } from '../../fixtures/cloud/vectors.ts';
import { CloudRefusal } from '../../../src/providers/cloud/errors.ts';
import { baseYaml, TEST_SECRET, ADMIN_TOKEN } from '../../helpers/keyhole.ts';

t.test('minted URLs come from the cache within a window, and are re-signed after it', async (t) => {
  const p = cloudProvider(`  - { name: s, kind: s3, match: "s3://data/", credentials: { accessKeyId: AKID, secretAccessKey: "\${env:S}" }, buckets: [{ name: data }] }\n`, { S: 'x' });
  t.teardown(() => p.close());
  const at = (iso: string) => p.mint(uri('s3://data/a.jpg'), { method: 'GET', audience: 'public', nowMs: Date.parse(iso) });
  const a = await at('2026-01-01T00:00:01Z');
  const b = await at('2026-01-01T00:00:59Z');
  t.equal(b.url, a.url);
  t.equal(b.expiresAt, '2026-01-01T00:05:00.000Z');
  const c = await at('2026-01-01T00:01:00Z');
  t.not(c.url, a.url);
  t.equal(c.expiresAt, '2026-01-01T00:06:00.000Z');
});

t.test('no usable credentials: credentials_unavailable, nothing secret in the message', async (t) => {
  const saved = { ...process.env };
  t.teardown(() => {
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_CREDENTIAL_EXPIRATION', 'AWS_SESSION_TOKEN']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });
  process.env.AWS_ACCESS_KEY_ID = 'AKIDEXPIRED';
  process.env.AWS_SECRET_ACCESS_KEY = 'expired-secret-value';
  process.env.AWS_SESSION_TOKEN = 'tok';
  process.env.AWS_CREDENTIAL_EXPIRATION = new Date(Date.now() - 60_000).toISOString();
  const p = cloudProvider(`  - { name: s, kind: s3, match: "s3://data/", credentials: { source: chain }, buckets: [{ name: data }] }\n`);
  t.teardown(() => p.close());
  const err = await p.presignFor(uri('s3://data/a.jpg'), []).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof CloudRefusal);
  t.equal((err as CloudRefusal).reason, 'credentials_unavailable');
  t.equal((err as CloudRefusal).status, 502);
  t.notMatch((err as Error).message, /expired-secret-value/);
});

t.test('keyhole presign prints the URL alone on stdout; refusals exit non-zero with the reason', async (t) => {
  const docs = vector('aws/aws-s3-docs-examples.json');
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-presign-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'keyhole.yaml');
  writeFileSync(
    file,
    baseYaml(`providers:
  - name: docs
    kind: s3
    match: s3://examplebucket/
    endpoint: https://s3.amazonaws.com
    credentials: { accessKeyId: ${docs.credentials.accessKeyId}, secretAccessKey: "\${env:DOCS_SECRET}" }
    buckets: [{ name: examplebucket }]
    ttl: { default: 300s, max: 86400s }
`),
  );
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ['--import=tsx', 'src/cli.ts', 'presign', '--config', file, ...args], {
      encoding: 'utf8',
      env: { ...process.env, DOCS_SECRET: docs.credentials.secretAccessKey, KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN },
    });
  const ok = run('--at', '2013-05-24T00:00:00Z', '--ttl', '86400', 's3://examplebucket/test.txt');
  t.equal(ok.status, 0, ok.stderr);
  t.equal(ok.stdout, `${docs.presignedGet.expectedUrl}\n`, 'the S3 docs example, alone on stdout');
  const tooLong = run('--ttl', '86401', 's3://examplebucket/test.txt');
  t.not(tooLong.status, 0);
  t.equal(tooLong.stdout, '');
  t.match(tooLong.stderr, /ttl_too_long/);
  t.notMatch(tooLong.stderr, new RegExp(docs.credentials.secretAccessKey.replace(/[/+]/g, '.')));
});

t.test('redactUrl hides the signature and credential of every kind of minted URL', async (t) => {
  const { redactUrl } = await import('../../../src/observe/logger.ts');
  const { GCS_KEY_FILE } = await import('../../fixtures/cloud/vectors.ts');
  const env = { S: 'x', T: 'session-token-value', AZ: Buffer.alloc(64, 3).toString('base64') };
  const providers = [
    cloudProvider(`  - { name: s, kind: s3, match: "s3://data/", credentials: { accessKeyId: AKID, secretAccessKey: "\${env:S}", sessionToken: "\${env:T}" }, buckets: [{ name: data }] }\n`, env),
    cloudProvider(`  - { name: g, kind: gcs, match: "gs://data/", credentials: { serviceAccountKey: "\${file:${GCS_KEY_FILE}}" }, buckets: [{ name: data }] }\n`, env),
    cloudProvider(`  - { name: a, kind: azure, match: "azure-blob://data/", account: acct1, accountKey: "\${env:AZ}", containers: [{ name: data }] }\n`, env),
  ];
  for (const p of providers) {
    const match = p.match;
    const { url } = await p.presignFor(uri(`${match}x.jpg`), []);
    const red = redactUrl(url);
    const secretParams = [...new URL(url).searchParams.entries()].filter(([k]) => /signature|credential|security-token|^sig$/i.test(k));
    t.ok(secretParams.length >= 1, `${p.kind}: has signed parameters`);
    for (const [k, v] of secretParams) t.notOk(red.includes(encodeURIComponent(v)) || red.includes(v), `${p.kind}: ${k} redacted`);
    await p.close();
  }
});
