// One audit event per data request, with every field the issue names: time, request id,
// sub, org, provider, URI, decision and reason code, status, bytes, duration, client.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditFor, baseYaml, dataUrl, startKeyhole } from '../helpers/keyhole.js';

const root = mkdtempSync(join(tmpdir(), 'keyhole-audit-'));
writeFileSync(join(root, 'a.txt'), 'hello audit');

t.test('audit events for allowed and refused requests', async (t) => {
  const k = await startKeyhole(
    baseYaml(`providers:
  - { name: files, kind: local, match: "local://files/", root: ${root}, orgs: [acme] }
`),
  );
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['local://files/'], org: 'acme' });
  const before = Date.now();
  const ok = await k.get(dataUrl('local://files/a.txt'), { authorization: `Bearer ${token}` });
  const allowed = await auditFor(k, ok.headers['x-request-id'] as string);
  t.same(Object.keys(allowed).sort(), ['aborted', 'bytes', 'client', 'decision', 'id', 'ms', 'org', 'provider', 'reason', 'status', 'sub', 'tokenSource', 'uri'].sort());
  t.match(allowed, { sub: 'alice', org: 'acme', provider: 'files', uri: 'local://files/a.txt', decision: 'allow', reason: 'ok', status: 200, bytes: 11, aborted: false, client: '127.0.0.1', tokenSource: 'header' });
  t.type(allowed.ms, 'number');
  t.ok((allowed.ms as number) >= 0);
  const line = k.logs.find((l) => l.kind === 'audit' && l.audit?.id === allowed.id)!;
  t.ok(Date.parse(line.time as string) >= before - 1000, 'the log line carries the time');
  t.equal(line.level, 'info');

  const other = await k.token({ scope: ['local://files/'], org: 'globex' });
  const denied = await k.get(dataUrl('local://files/a.txt'), { authorization: `Bearer ${other}` });
  t.match(await auditFor(k, denied.headers['x-request-id'] as string), { sub: 'alice', org: 'globex', provider: 'files', uri: 'local://files/a.txt', decision: 'deny', reason: 'org_denied', status: 403, bytes: 0 });

  const anonymous = await k.get(dataUrl('local://files/a.txt'));
  t.match(await auditFor(k, anonymous.headers['x-request-id'] as string), { sub: undefined, provider: undefined, uri: undefined, decision: 'deny', reason: 'token_missing', status: 401 });
  t.equal(k.audits().length, 3, 'exactly one event per request');
});

t.test('log.audit: false writes no audit events', async (t) => {
  const k = await startKeyhole(baseYaml(`providers:\n  - { name: files, kind: local, match: "local://files/", root: ${root} }\n`).replace('log: { level: debug }', 'log: { level: debug, audit: false }'));
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['local://files/'] });
  t.equal((await k.get(dataUrl('local://files/a.txt'), { authorization: `Bearer ${token}` })).status, 200);
  await new Promise((r) => setImmediate(r));
  t.equal(k.audits().length, 0);
});
