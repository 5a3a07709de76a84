// `keyhole token --config FILE` reads auth.keys and nothing else that needs a secret: it
// runs where only the signing secret is set (a CI job, an admin's laptop), and what it
// mints opens data on a Keyhole that has every secret.
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { baseYaml, dataUrl, startKeyhole, TEST_SECRET } from '../helpers/keyhole.ts';
import { runCli, tmpDir } from '../helpers/cli.ts';

t.setTimeout(300_000);

/** The provider secrets the token command must not need. */
const PROVIDER_SECRETS = { TOKEN_T_S3_KEY_ID: 'AKIAEXAMPLEKEYID', TOKEN_T_S3_SECRET: 'provider-secret-0123456789', TOKEN_T_DATA_PASS: 'p' };
const UNSET = Object.fromEntries(Object.keys(PROVIDER_SECRETS).map((k) => [k, undefined]));

function setup(name: string, extra = ''): { file: string; yaml: string } {
  const dir = tmpDir(name);
  mkdirSync(join(dir, 'files'));
  writeFileSync(join(dir, 'files', 'hello.txt'), 'hello from keyhole\n');
  const yaml = baseYaml(`providers:
  - { name: files, kind: local, match: "local://files/", root: ${join(dir, 'files')} }
  - name: ls-images
    kind: s3
    match: s3://labeling-data/
    buckets: [{ name: labeling-data }]
    credentials: { accessKeyId: "\${env:TOKEN_T_S3_KEY_ID}", secretAccessKey: "\${env:TOKEN_T_S3_SECRET}" }
  - name: corp
    kind: http
    match: https://data.corp/
    baseUrl: https://files.internal/
    auth: { type: basic, username: u, password: "\${env:TOKEN_T_DATA_PASS}" }
${extra}`);
  const file = join(dir, 'keyhole.yaml');
  writeFileSync(file, yaml);
  return { file, yaml };
}

t.test('provider and admin secrets unset: the token is minted, and a Keyhole with every secret accepts it', async (t) => {
  const { file, yaml } = setup('token-partial');
  const r = runCli(['token', '--config', file, '--sub', 'alice', '--scope', 'local://files/', '--scope', 's3://labeling-data/'], {
    env: { ...UNSET, KEYHOLE_TEST_ADMIN: undefined, KEYHOLE_TEST_SECRET: TEST_SECRET },
  });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stderr, '', 'nothing to say about the unset provider secrets');
  const token = r.stdout.trim();
  t.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);

  const k = await startKeyhole(yaml, { env: PROVIDER_SECRETS });
  t.teardown(() => k.close());
  const local = await k.get(dataUrl('local://files/hello.txt'), { authorization: `Bearer ${token}` });
  t.equal(local.status, 200);
  t.equal(local.body.toString(), 'hello from keyhole\n');
  const s3 = await k.get(dataUrl('s3://labeling-data/project-12/img/0001.jpg'), { authorization: `Bearer ${token}` });
  t.equal(s3.status, 307, 'presigned with the secrets the token command never read');
  t.match(String(s3.headers.location), /X-Amz-Credential=AKIAEXAMPLEKEYID/);
  const sig = token.lastIndexOf('.') + 5;
  const forged = `${token.slice(0, sig)}${token[sig] === 'A' ? 'B' : 'A'}${token.slice(sig + 1)}`;
  const stranger = await k.get(dataUrl('local://files/hello.txt'), { authorization: `Bearer ${forged}` });
  t.equal(stranger.status, 401, 'the check is real: a forged signature is refused');
});

t.test('an unset auth key secret fails, naming the file and the path', async (t) => {
  const { file } = setup('token-no-key');
  const r = runCli(['token', '--config', file, '--sub', 'alice', '--scope', 'local://files/'], { env: { ...PROVIDER_SECRETS, KEYHOLE_TEST_SECRET: undefined } });
  t.equal(r.code, 2);
  t.equal(r.stdout, '', 'no token');
  t.equal(r.stderr, `keyhole: ${file}: configuration has 1 problem(s):\n  auth.keys[0].secret: environment variable KEYHOLE_TEST_SECRET is not set\n`);
});

t.test('the rest of the file is still checked for its structure', async (t) => {
  const { file } = setup('token-structure', 'cors: { origins: ["https://label.example.org/path"] }\n');
  const r = runCli(['token', '--config', file, '--sub', 'alice', '--scope', 'local://files/'], { env: { ...UNSET, KEYHOLE_TEST_SECRET: TEST_SECRET } });
  t.equal(r.code, 2);
  t.match(r.stderr, new RegExp(`^keyhole: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: configuration has 1 problem\\(s\\):\n {2}cors\\.origins\\[0\\]: must be an exact origin`));
  t.notMatch(r.stderr, /TOKEN_T_/, 'the unset provider secrets are not among the problems');
});
