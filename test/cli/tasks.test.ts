// `keyhole tasks rewrite` as an admin runs it on a Label Studio export: files and pipes,
// the summary on stderr, exit codes, and no secret of the config set anywhere.
import t from 'tap';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tmpDir } from '../helpers/cli.ts';

t.setTimeout(300_000);

const FIXTURES = join(process.cwd(), 'test', 'fixtures', 'label-studio');
const EXPORT = join(FIXTURES, 'export.json');
const EXPORT_MIN = join(FIXTURES, 'export-min.json');

/** Every secret the config names is unset where the command runs: the auth key's too. */
const NO_SECRETS = { TASKS_CLI_KEY_ID: undefined, TASKS_CLI_S3_SECRET: undefined, TASKS_CLI_HS: undefined, TASKS_CLI_ADMIN: undefined };

function config(dir: string): string {
  const file = join(dir, 'keyhole.yaml');
  writeFileSync(
    file,
    `server:
  listen: { host: 0.0.0.0, port: 8443 }
  tls: { cert: /run/secrets/keyhole.pem, key: /run/secrets/keyhole-key.pem }
admin:
  token: \${env:TASKS_CLI_ADMIN}
auth:
  issuer: label-studio
  audience: keyhole
  keys:
    - { kid: ls-2026, algorithms: [HS256], secret: "\${env:TASKS_CLI_HS}" }
providers:
  - name: ls-images
    kind: s3
    match: s3://labeling-data/
    buckets: [{ name: labeling-data }]
    credentials: { accessKeyId: "\${env:TASKS_CLI_KEY_ID}", secretAccessKey: "\${env:TASKS_CLI_S3_SECRET}" }
`,
  );
  return file;
}

t.test('a JSON export to Keyhole URLs in a file, then back through a pipe: the same export', async (t) => {
  const dir = tmpDir('tasks-roundtrip');
  const file = config(dir);
  const out = join(dir, 'keyhole-tasks.json');
  const there = runCli(['tasks', 'rewrite', '--config', file, '--input', EXPORT, '--output', out, '--base', 'https://label.example.org/'], { env: NO_SECRETS });
  t.equal(there.code, 0, there.stderr);
  t.equal(there.stdout, '');
  t.equal(
    there.stderr,
    [
      'keyhole tasks rewrite: 4 task(s) (json), 7 value(s) rewritten to Keyhole URLs, 5 left alone',
      '  task 104 data.image: gs://archive-2019/frames/0004.jpg (no provider matches)',
      '  task 104 data.video: s3://labeling-data/project-12/video/clip?… (query and fragment are not accepted in data URIs)',
      '  task 104 data.thumb: s3://labeling-data/project-12/img/frame#3.jpg (query and fragment are not accepted in data URIs)',
      '  task 104 data.preview: https://cdn.example.org/p/0004.jpg?… (no provider matches)',
      '  task 104 data.folder: s3://labeling-data/project-12/img/ (the URI ends in / and names a folder, not an object)',
      '',
    ].join('\n'),
  );
  const rewritten = readFileSync(out, 'utf8');
  t.match(rewritten, /"image": "https:\/\/label\.example\.org\/v1\/data\?uri=s3%3A%2F%2Flabeling-data%2Fproject-12%2Fimg%2F0001\.jpg"/);
  t.notOk(readdirSync(dir).some((f) => f.endsWith('.tmp')), 'no temporary file left');

  const back = runCli(['tasks', 'rewrite', '--config', file, '--to', 'storage', '--base', 'https://label.example.org'], { env: NO_SECRETS, input: rewritten });
  t.equal(back.code, 0, back.stderr);
  t.equal(back.stderr, 'keyhole tasks rewrite: 4 task(s) (json), 7 value(s) rewritten to storage URIs, 0 left alone\n');
  const original = readFileSync(EXPORT, 'utf8');
  t.same(JSON.parse(back.stdout), JSON.parse(original), 'parsed-equal');
  t.equal(back.stdout, original, 'and byte for byte: indentation and the final newline kept');
});

t.test('JSON-min in place, --key keeping an annotation result as it is', async (t) => {
  const dir = tmpDir('tasks-min');
  const file = config(dir);
  const target = join(dir, 'export-min.json');
  writeFileSync(target, readFileSync(EXPORT_MIN));
  const r = runCli(['tasks', 'rewrite', '--config', file, '--input', target, '--output', target, '--key', 'image', '--key', 'audio', '--key', 'pages', '--key', 'source'], { env: NO_SECRETS });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /^keyhole tasks rewrite: 4 task\(s\) \(json-min\), 7 value\(s\) rewritten to Keyhole URLs, 1 left alone\n {2}task 104 image: gs:\/\/archive-2019/);
  const tasks = JSON.parse(readFileSync(target, 'utf8')) as Record<string, unknown>[];
  t.equal(tasks[0]!.image, '/v1/data?uri=s3%3A%2F%2Flabeling-data%2Fproject-12%2Fimg%2F0001.jpg');
  t.equal(tasks[1]!.comment, 's3://labeling-data/project-12/img/0001.jpg', 'the TextArea result, not a --key, is untouched');
});

t.test('bad JSON: exit 2, the reason without a quote of the input, nothing written', async (t) => {
  const dir = tmpDir('tasks-bad');
  const file = config(dir);
  const out = join(dir, 'out.json');
  const r = runCli(['tasks', 'rewrite', '--config', file, '--output', out], { env: NO_SECRETS, input: 'https://cdn.example.org/a.jpg?X-Amz-Signature=0f4c9e1d' });
  t.equal(r.code, 2);
  t.equal(r.stderr, "keyhole: stdin is not JSON: Unexpected token 'h'\n");
  t.notOk(existsSync(out));

  const cut = runCli(['tasks', 'rewrite', '--config', file, '--input', EXPORT_MIN.replace('export-min', 'nonexistent')], { env: NO_SECRETS });
  t.equal(cut.code, 2);
  t.match(cut.stderr, /^keyhole: cannot read .*nonexistent\.json: ENOENT\n$/);

  const truncated = runCli(['tasks', 'rewrite', '--config', file], { env: NO_SECRETS, input: readFileSync(EXPORT).subarray(0, 300) });
  t.equal(truncated.code, 2);
  t.match(truncated.stderr, /^keyhole: stdin is not JSON: .*\(line \d+ column \d+\)\n$/);

  const notTasks = runCli(['tasks', 'rewrite', '--config', file], { env: NO_SECRETS, input: '[{"data": {"image": "s3://labeling-data/a.jpg"}}, {"image": "s3://labeling-data/b.jpg"}]' });
  t.equal(notTasks.code, 2);
  t.equal(notTasks.stderr, 'keyhole: stdin: 1 of 2 tasks have a "data" object and the others not: say which with --format json or --format json-min\n');
});

t.test('usage: help on stdout with exit 0, mistakes with exit 2', async (t) => {
  const help = runCli(['tasks', '--help']);
  t.equal(help.code, 0);
  for (const option of ['--config FILE', '--to keyhole|storage', '--base URL', '--input FILE|-', '--output FILE|-', '--format', '--key NAME', '512 MiB']) t.match(help.stdout, option);
  t.equal(runCli(['tasks', 'rewrite', '--help']).stdout, help.stdout);
  t.match(runCli(['--help']).stdout, /tasks rewrite --config FILE/, 'the main help names the tasks command with its synopsis');

  const dir = tmpDir('tasks-usage');
  const file = config(dir);
  for (const [args, message] of [
    [['tasks'], /^keyhole: tasks needs a subcommand\n/],
    [['tasks', 'rewrite'], /^keyhole: tasks rewrite needs --config FILE/],
    [['tasks', 'rewrite', '--config', file, '--to', 'sideways'], /^keyhole: --to must be keyhole or storage, not sideways\n$/],
    [['tasks', 'rewrite', '--config', file, '--base', 'label.example.org'], /^keyhole: --base must be an absolute URL/],
    [['tasks', 'rewrite', '--config', file, '--base', 'https://label.example.org/?x=1'], /no query, fragment or user/],
    [['tasks', 'rewrite', '--config', file, '--format', 'csv'], /^keyhole: --format must be auto, json or json-min, not csv\n$/],
    [['tasks', 'rewrite', '--config', file, '--colour', 'blue'], /^keyhole: Unknown option '--colour'/],
    [['tasks', 'rewrite', '--config', join(dir, 'missing.yaml')], /^keyhole: .*missing\.yaml: configuration has 1 problem\(s\):\n {2}cannot read .*missing\.yaml: ENOENT\n$/],
  ] as const) {
    const r = runCli([...args], { env: NO_SECRETS, input: '[]' });
    t.equal(r.code, 2, args.join(' '));
    t.match(r.stderr, message);
    t.equal(r.stdout, '');
  }
});

// Found by a review: V8's JSON error quoted the input (with a leading `...` when cut), the
// summary printed user:password@ and JWTs of values left alone, and an in-place rewrite of a
// 0600 export came back 0644.
t.test('no export content or credential on stderr; an in-place rewrite keeps the file mode', async (t) => {
  const dir = tmpDir('tasks-private');
  const cfg = config(dir);
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, `[{"data": {"image": "s3://labeling-data/a.jpg?X-Amz-Signature=SECRETSIG"}}, ${'x'.repeat(40)}=SECRETTAIL", b]`);
  const r1 = runCli(['tasks', 'rewrite', '--config', cfg, '--input', bad, '--output', '-'], { env: NO_SECRETS });
  t.equal(r1.code, 2, 'bad JSON: exit 2');
  t.notMatch(r1.stderr, /SECRET/, 'nothing of the input on stderr');
  const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';
  const priv = join(dir, 'private.json');
  writeFileSync(priv, JSON.stringify([{ data: { a: 'https://user:hunter2@elsewhere.example/x.jpg', b: `https://elsewhere.example/${jwt}/y.jpg`, c: 's3://labeling-data/z.jpg' } }]), { mode: 0o600 });
  chmodSync(priv, 0o600);
  const r2 = runCli(['tasks', 'rewrite', '--config', cfg, '--input', priv, '--output', priv], { env: NO_SECRETS });
  t.equal(r2.code, 0, 'rewritten in place');
  t.notMatch(r2.stderr, /hunter2|eyJhbGci/, 'no password or JWT in the summary');
  t.equal(statSync(priv).mode & 0o777, 0o600, 'the file keeps its 0600');
});
