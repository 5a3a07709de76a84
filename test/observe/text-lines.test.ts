// `log.format: text`: operational lines as `time LEVEL message key=value…` for a person at a
// terminal, redacted as the JSON ones are; audit lines in the same file stay JSON and their
// chain still verifies (`keyhole audit verify`).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditLog, type AuditEvent } from '../../src/observe/audit.ts';
import { LineWriter } from '../../src/observe/line-writer.ts';
import { createLogger } from '../../src/observe/logger.ts';
import { toText } from '../../src/observe/text-lines.ts';
import { ConfigError, parseConfig } from '../../src/config/load.ts';
import { runCli, tmpDir } from '../helpers/cli.ts';
import { ADMIN_TOKEN, baseYaml, filesProviderYaml, tempFiles, TEST_SECRET } from '../helpers/keyhole.ts';

const event: AuditEvent = { id: 'r-1', kind: 'data', sub: 'alice', jti: 'j-1', org: undefined, provider: 'files', uri: 'local://files/a.txt', decision: 'allow', reason: 'ok', status: 200, bytes: 5, aborted: false, ms: 0.4, client: '127.0.0.1', tokenSource: 'header' };

t.test('toText: the head, then every field as key=value; a line that is not JSON passes as written', async (t) => {
  t.equal(
    toText('{"level":"info","time":"2026-12-04T01:29:05.782Z","service":"keyhole","data":{"address":"127.0.0.1","family":"IPv4","port":8443},"workers":1,"providers":["samples:local"],"msg":"keyhole listening"}'),
    '2026-12-04T01:29:05.782Z INFO keyhole listening data=127.0.0.1:8443 workers=1 providers=["samples:local"]\n',
  );
  t.equal(toText('{"level":"warn","time":"t","msg":"m","path":"a b","why":"x=y"}'), 't WARN m path="a b" why="x=y"\n', 'values with spaces or = are quoted');
  t.equal(toText('not json\n'), 'not json\n');
});

t.test('a text log file: human lines, redacted; the audit lines in it are JSON and their chain verifies', async (t) => {
  const file = join(tmpDir('text-log'), 'keyhole.log');
  const writer = new LineWriter({ path: file });
  const logger = createLogger({ level: 'info', format: 'text', destination: writer });
  const audit = new AuditLog(logger, undefined, { chain: { every: 2, intervalMs: 0 } });
  logger.info({ data: { address: '127.0.0.1', port: 8443 }, workers: 1 }, 'keyhole listening');
  audit.write(event);
  logger.warn({ authorization: 'Bearer eyJhbGciOi.secret.sig', token: 'tok-secret' }, 'refused');
  audit.write({ ...event, id: 'r-2' });
  audit.write({ ...event, id: 'r-3' });
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  writer.flushSync();
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  const json = lines.filter((l) => l.startsWith('{'));
  const text = lines.filter((l) => !l.startsWith('{'));
  t.equal(text.length, 2, readFileSync(file, 'utf8'));
  t.match(text[0], /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO keyhole listening data=127\.0\.0\.1:8443 workers=1$/);
  t.match(text[1], /^\S+ WARN refused authorization="?\[redacted\]"? token="?\[redacted\]"?$/);
  t.notMatch(readFileSync(file, 'utf8'), /tok-secret|eyJhbGciOi/, 'no credential in the file');
  t.ok(json.length >= 4, 'three audit lines and a checkpoint, as JSON');
  for (const l of json) t.match(JSON.parse(l) as object, { kind: 'audit' });
  const verify = runCli(['audit', 'verify', '--partial', file]);
  t.equal(verify.code, 0, `the chain verifies: ${verify.stdout}${verify.stderr}`);
});

t.test('log.format is in the config: json by default, text on request, anything else refused', async (t) => {
  const yaml = (log: string) => baseYaml(filesProviderYaml(tempFiles('fmt')), { log });
  const env = { KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN };
  t.equal(parseConfig(yaml('{ level: info }'), { env }).log.format, 'json');
  t.equal(parseConfig(yaml('{ level: info, format: text }'), { env }).log.format, 'text');
  let problems: unknown;
  try {
    parseConfig(yaml('{ level: info, format: pretty }'), { env });
  } catch (err) {
    problems = (err as ConfigError).problems;
  }
  t.match(problems, [{ path: 'log.format', message: /expected one of "json"\|"text"/ }]);
});
