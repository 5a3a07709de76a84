// s3 with an assumed role and an external ID (credentials: { roleArn, externalId, source }):
// the AWS SDK's fromTemporaryCredentials asks a loopback STS stand-in (test/fixtures/cloud/
// sts.ts: checks the base key's SigV4, the role and the external ID), and the temporary
// session signs for a real S3 server that verifies SigV4 (s3rver), in presign and proxy mode.
// Refresh before the session ends; STS down or answering garbage once the session has
// ended: refused, never signed with an expired session.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { CloudRefusal } from '../../src/providers/cloud/errors.ts';
import { parseConfig, ConfigError } from '../../src/config/load.ts';
import { ADMIN_TOKEN, auditFor, baseYaml, dataUrl, keyholeWith, TEST_SECRET } from '../helpers/keyhole.ts';
import { cloudProvider, uri } from '../fixtures/cloud/vectors.ts';
import { startS3rver, S3RVER_KEY, S3RVER_SECRET } from '../fixtures/cloud/s3rver.ts';
import { startSts, type RunningSts } from '../fixtures/cloud/sts.ts';
import { spawnKeyhole } from '../helpers/spawn.ts';

const ROLE = 'arn:aws:iam::123456789012:role/keyhole-reader';
const EXTERNAL_ID = 'label-vendor-7f3a';
const BASE = { id: 'AKIABASEIDENTITY0001', secret: 'base-identity-secret-not-for-s3' };
const BODY = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 253));

const s3 = await startS3rver(['bucket1']);
t.teardown(() => s3.close());
await s3.put('bucket1', 'images/cat.jpg', BODY, 'image/jpeg');

/** Each session: s3rver's key (the only one it accepts), a new session token, `lifetimeMs`. */
async function sts(lifetimeMs = 3_600_000): Promise<RunningSts> {
  const running = await startSts({
    baseKey: BASE,
    roleArn: ROLE,
    externalId: EXTERNAL_ID,
    issue: (n) => ({ accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_SECRET, sessionToken: `FwoGZXIvYXdzEL-session-${n}`, expiration: new Date(Date.now() + lifetimeMs) }),
  });
  t.teardown(() => running.close());
  return running;
}

const providerYaml = (endpoint: string, opts: { mode?: 'presign' | 'proxy'; externalId?: string; refreshBefore?: string; stsTimeout?: string } = {}) => `  - name: role
    kind: s3
    mode: ${opts.mode ?? 'presign'}
    match: s3://bucket1/
    endpoint: ${s3.endpoint}
    pathStyle: true
    credentials:
      roleArn: ${ROLE}
      externalId: "${opts.externalId ?? '${env:EXTERNAL_ID}'}"
      sessionName: keyhole-test
      durationSeconds: 900
      source: { accessKeyId: ${BASE.id}, secretAccessKey: "\${env:BASE_SECRET}" }
      stsEndpoint: ${endpoint}
      refreshBefore: ${opts.refreshBefore ?? '60s'}
      stsTimeout: ${opts.stsTimeout ?? '5s'}
    buckets: [{ name: bucket1, prefixes: [images/] }]
    ttl: { default: 300s, max: 3600s }
`;
const env = { EXTERNAL_ID, BASE_SECRET: BASE.secret };

const fetchUrl = async (url: string) => {
  const res = await request(url, { reset: true });
  return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
};

t.test('presign: the role session signs, the S3 server accepts, STS saw the external ID and a valid base signature', async (t) => {
  const stsd = await sts(600_000);
  const p = cloudProvider(providerYaml(stsd.endpoint), env);
  t.teardown(() => p.close());
  const signed = await p.presignFor(uri('s3://bucket1/images/cat.jpg'), [], { ttlSeconds: 3600 });
  const u = new URL(signed.url);
  t.equal(u.searchParams.get('X-Amz-Security-Token'), 'FwoGZXIvYXdzEL-session-1', 'the session token from STS');
  t.match(u.searchParams.get('X-Amz-Credential'), /^S3RVER\//);
  const got = await fetchUrl(signed.url);
  t.equal(got.status, 200, 'the S3 server accepts the URL');
  t.same(got.body, BODY);
  t.equal(stsd.calls.length, 1, 'one AssumeRole');
  t.match(stsd.calls[0], { keyId: BASE.id, signed: true, answered: 200, params: { Action: 'AssumeRole', RoleArn: ROLE, ExternalId: EXTERNAL_ID, RoleSessionName: 'keyhole-test', DurationSeconds: '900' } });
  const ends = Date.parse(signed.expiresAt);
  t.ok(ends <= Date.now() + 600_000 && ends > Date.now() + 590_000, 'a 3600 s URL is capped at the session end, and says so');
  await p.presignFor(uri('s3://bucket1/images/cat.jpg'), []);
  t.equal(stsd.calls.length, 1, 'the session is reused while it lasts');
});

t.test('proxy mode: the role session signs Keyhole\'s own request; exact bytes, a range; the base secret never leaves', async (t) => {
  const stsd = await sts();
  const { k, auth } = await keyholeWith(t, `providers:\n${providerYaml(stsd.endpoint, { mode: 'proxy' })}`, ['s3://bucket1/'], { env });
  const res = await k.get(dataUrl('s3://bucket1/images/cat.jpg'), auth);
  t.equal(res.status, 200);
  t.same(res.body, BODY);
  const ranged = await k.get(dataUrl('s3://bucket1/images/cat.jpg'), { ...auth, range: 'bytes=10-19' });
  t.equal(ranged.status, 206);
  t.same(ranged.body, BODY.subarray(10, 20));
  t.match(await auditFor(k, String(res.headers['x-request-id'])), { reason: 'ok', provider: 'role', bytes: BODY.length });
  t.notOk(k.rawLogs().includes(BASE.secret), 'the base secret is in no log line');
  t.notOk(k.rawLogs().includes('FwoGZXIvYXdzEL-session'), 'nor the session token');
});

t.test('a wrong external ID: STS refuses (AccessDenied), the request is refused credentials_unavailable', async (t) => {
  const stsd = await sts();
  const p = cloudProvider(providerYaml(stsd.endpoint, { externalId: 'someone-elses-id' }), env);
  t.teardown(() => p.close());
  const err = await p.presignFor(uri('s3://bucket1/images/cat.jpg'), []).catch((e: unknown) => e);
  t.ok(err instanceof CloudRefusal, 'refused');
  t.equal((err as CloudRefusal).reason, 'credentials_unavailable');
  t.match((err as CloudRefusal).message, /not authorized to perform: sts:AssumeRole/);
  t.match(stsd.calls[0], { signed: true, answered: 403, params: { ExternalId: 'someone-elses-id' } });
});

t.test('refreshed before the session ends, with no gap: a new session before the old one expires', async (t) => {
  const stsd = await sts(1_500);
  const p = cloudProvider(providerYaml(stsd.endpoint, { refreshBefore: '1s' }), env);
  t.teardown(() => p.close());
  const first = await p.presignFor(uri('s3://bucket1/images/cat.jpg'), []);
  t.equal(new URL(first.url).searchParams.get('X-Amz-Security-Token'), 'FwoGZXIvYXdzEL-session-1');
  await new Promise((r) => setTimeout(r, 700));
  const second = await p.presignFor(uri('s3://bucket1/images/cat.jpg'), []);
  t.equal(new URL(second.url).searchParams.get('X-Amz-Security-Token'), 'FwoGZXIvYXdzEL-session-2', 'within refreshBefore of the end: a new session');
  t.ok(Date.parse(first.expiresAt) > Date.now(), 'while the first was still valid');
  t.equal((await fetchUrl(second.url)).status, 200);
});

t.test('STS down or answering garbage once the session has ended: refused, never signed with the expired one', async (t) => {
  for (const mode of ['down', 'garbage'] as const) {
    const stsd = await sts(1_100);
    const p = cloudProvider(providerYaml(stsd.endpoint, { refreshBefore: '1s' }), env);
    t.teardown(() => p.close());
    await p.presignFor(uri('s3://bucket1/images/cat.jpg'), []);
    stsd.mode = mode;
    await new Promise((r) => setTimeout(r, 300));
    const err = await p.presignFor(uri('s3://bucket1/images/cat.jpg'), []).catch((e: unknown) => e);
    t.ok(err instanceof CloudRefusal && err.reason === 'credentials_unavailable', `${mode}: refused credentials_unavailable`);
    stsd.mode = 'ok';
    const back = await p.presignFor(uri('s3://bucket1/images/cat.jpg'), []);
    t.equal((await fetchUrl(back.url)).status, 200, `${mode}: STS back, signing resumes without a restart`);
  }
});

t.test('STS slow: the call is cut (two attempts of stsTimeout, 3 s to spare) and refused, not waited on', async (t) => {
  const stsd = await sts();
  stsd.mode = 'slow';
  const p = cloudProvider(providerYaml(stsd.endpoint, { stsTimeout: '500ms' }), env);
  t.teardown(() => p.close());
  const started = Date.now();
  const err = await p.presignFor(uri('s3://bucket1/images/cat.jpg'), []).catch((e: unknown) => e);
  t.ok(err instanceof CloudRefusal && err.reason === 'credentials_unavailable', 'refused credentials_unavailable');
  t.ok(Date.now() - started < 10_000, `given up after ${Date.now() - started} ms (at most 2 × 500 ms + 3 s, not the 30 s STS takes)`);
});

t.test('clock skew: STS answers a session that has already ended by our clock → refused, never signed', async (t) => {
  const stsd = await sts(-60_000);
  const p = cloudProvider(providerYaml(stsd.endpoint), env);
  t.teardown(() => p.close());
  const err = await p.presignFor(uri('s3://bucket1/images/cat.jpg'), []).catch((e: unknown) => e);
  t.ok(err instanceof CloudRefusal && err.reason === 'credentials_unavailable', 'refused');
  t.match((err as Error).message, /expired credentials/);
});

t.test('the config check: a malformed role ARN, external ID or duration, each with its path', async (t) => {
  const bad = `providers:
  - name: role
    kind: s3
    match: s3://bucket1/
    credentials: { roleArn: "arn:aws:iam::12:user/x", externalId: "a", durationSeconds: 60 }
    buckets: [{ name: bucket1 }]
`;
  const err = (() => {
    try {
      parseConfig(baseYaml(bad), { env: { ...process.env, KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN } });
    } catch (e) {
      return e;
    }
  })();
  t.ok(err instanceof ConfigError, 'refused');
  const text = (err as ConfigError).message;
  t.match(text, /IAM role ARN/);
  t.match(text, /external ID is 2 to 1224/);
  t.match(text, /durationSeconds|900/);
});

t.test('readiness and metrics: no session at start → /readyz 503 (credentials: false); STS back → ready after the next request', async (t) => {
  const stsd = await sts();
  stsd.mode = 'down';
  const { k, auth } = await keyholeWith(t, `providers:\n${providerYaml(stsd.endpoint, { mode: 'proxy' })}`, ['s3://bucket1/'], { env });
  const readyz = async () => {
    const res = await request(k.admin + '/readyz');
    return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
  };
  let r = await readyz();
  for (let i = 0; i < 50 && r.status === 200; i++) {
    await new Promise((res) => setTimeout(res, 100));
    r = await readyz();
  }
  t.equal(r.status, 503, 'not ready: the warm-up found no session');
  t.match(r.json, { ready: false, credentials: false, revocation: true });
  t.ok(k.logs.some((l) => l.level === 'warn' && /provider role: no usable credentials from its identity yet/.test(String(l.msg))), 'the start-up says why, with the provider');
  const metrics = async () => (await (await request(k.admin + '/metrics')).body.text());
  t.match(await metrics(), /^keyhole_cloud_credentials_up\{provider="role"\} 0$/m);
  t.match(await metrics(), /^keyhole_cloud_credential_fetches_total\{provider="role",result="failed"\} [1-9]/m);
  t.equal((await k.get(dataUrl('s3://bucket1/images/cat.jpg'), auth)).status, 502, 'no session: refused');
  stsd.mode = 'ok';
  t.equal((await k.get(dataUrl('s3://bucket1/images/cat.jpg'), auth)).status, 200, 'STS back: served');
  r = await readyz();
  t.equal(r.status, 200, 'and ready again');
  t.match(r.json, { ready: true, credentials: true });
  t.match(await metrics(), /^keyhole_cloud_credentials_up\{provider="role"\} 1$/m);
  t.match(await metrics(), /^keyhole_cloud_credential_fetches_total\{provider="role",result="ok"\} 1$/m);
});

t.test('IRSA (web identity from the chain) → the role with the external ID, in a spawned Keyhole', async (t) => {
  const irsaRole = 'arn:aws:iam::123456789012:role/keyhole-irsa';
  const oidcToken = 'eyJhbGciOiJSUzI1NiJ9.projected-service-account-token.sig';
  const irsaSession = { accessKeyId: 'ASIAIRSASESSION00001', secretAccessKey: 'irsa-session-secret', sessionToken: 'IQoJb3JpZ2luX2VjEIRSA-session', expiration: new Date(Date.now() + 3_600_000) };
  let n = 0;
  const stsd = await startSts({
    baseKey: { id: 'AKIA-NONE-00000000000', secret: 'none' },
    roleArn: ROLE,
    externalId: EXTERNAL_ID,
    issue: () => ({ accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_SECRET, sessionToken: `FwoGZXIvYXdzEL-from-irsa-${++n}`, expiration: new Date(Date.now() + 3_600_000) }),
    webIdentity: { roleArn: irsaRole, token: oidcToken, session: irsaSession },
  });
  t.teardown(() => stsd.close());
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-irsa-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, oidcToken);
  const yaml = baseYaml(`providers:
  - name: role
    kind: s3
    mode: presign
    match: s3://bucket1/
    endpoint: ${s3.endpoint}
    pathStyle: true
    credentials: { roleArn: ${ROLE}, externalId: ${EXTERNAL_ID}, source: chain, stsEndpoint: ${stsd.endpoint} }
    buckets: [{ name: bucket1 }]
`);
  // What the EKS pod identity webhook injects; no keys anywhere.
  const env: Record<string, string> = { AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile, AWS_ROLE_ARN: irsaRole, AWS_ROLE_SESSION_NAME: 'irsa', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_STS: stsd.endpoint, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_SESSION_TOKEN: '', AWS_PROFILE: '', AWS_CONFIG_FILE: join(dir, 'none'), AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none'), AWS_EC2_METADATA_DISABLED: 'true' };
  const k = await spawnKeyhole(yaml, { env });
  t.teardown(() => k.stop());
  const auth = { authorization: `Bearer ${await k.token({ scope: ['s3://bucket1/'] })}` };
  const res = await k.get(dataUrl('s3://bucket1/images/cat.jpg'), { headers: auth });
  t.equal(res.status, 307, 'a presigned redirect');
  const url = new URL(String(res.headers.location));
  t.match(url.searchParams.get('X-Amz-Security-Token'), /^FwoGZXIvYXdzEL-from-irsa-/, 'signed by the role session');
  t.equal((await fetchUrl(url.toString())).status, 200, 'the S3 server accepts it');
  const web = stsd.calls.find((c) => c.params.Action === 'AssumeRoleWithWebIdentity');
  t.match(web, { answered: 200, params: { RoleArn: irsaRole, WebIdentityToken: oidcToken } }, 'first the web identity');
  const assumed = stsd.calls.find((c) => c.params.Action === 'AssumeRole');
  t.match(assumed, { answered: 200, signed: true, keyId: irsaSession.accessKeyId, params: { RoleArn: ROLE, ExternalId: EXTERNAL_ID } }, 'then the role, signed by the IRSA session with its token');
  t.notOk(k.output().includes(oidcToken) || k.output().includes(irsaSession.secretAccessKey), 'neither the OIDC token nor the session secret in the output');
});
