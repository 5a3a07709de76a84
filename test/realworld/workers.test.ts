// `workers: 2` in front of gunicorn (a WSGI file view, as a Django app serves one; gunicorn's
// sync worker closes the connection after every body) with slow readers: with undici 7 each download whose read was paused killed
// its worker (an uncatchable assertion in undici's parser, #5360), losing audit events. Now:
// exact bytes for every download, one audit event each, no worker died.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testCerts } from '../helpers/certs.ts';
import { startGunicorn, startPythonHttpServer } from '../helpers/real-servers.ts';
import { wsgiFiles } from './support/apps.ts';
import { dataUrl } from '../helpers/keyhole.ts';
import { opsYaml, spawnKeyhole } from '../helpers/spawn.ts';
import { httpProviderItem } from '../helpers/upstream.ts';
import { rawRequest, sha256 } from './support/client.ts';

t.setTimeout(300_000);

t.test('two workers, four slow downloads from a closing upstream: all whole, all audited, no worker lost', async (t) => {
  const body = randomBytes(16 << 20);
  const files = await startPythonHttpServer(t, { big: body }); // a folder holding the file
  const py = await startGunicorn(t, wsgiFiles(files.dir));
  const root = mkdtempSync(join(tmpdir(), 'keyhole-workers-'));
  const yaml = 'workers: 2\n' + opsYaml(root, httpProviderItem('py', 'https://py.test/', `${py.origin}/`), { log: '{ level: info, audit: true }' });
  const k = await spawnKeyhole(yaml, { startTimeoutMs: 90_000 });
  t.teardown(() => k.stop());
  const auth = { authorization: `Bearer ${await k.token({ scope: ['https://py.test/'] })}` };
  const ca = readFileSync(testCerts().caCert);
  const answers = await Promise.all(
    [700, 500, 300, 600].map((pauseMs) => rawRequest({ port: k.dataPort, ca, path: dataUrl('https://py.test/big'), headers: auth, pace: { stallMs: pauseMs } })),
  );
  for (const [i, a] of answers.entries()) {
    t.equal(a.status, 200, `download ${i}`);
    t.ok(a.complete, `download ${i}: complete`);
    t.equal(a.sha256, sha256(body), `download ${i}: exact bytes`);
  }
  const ids = answers.map((a) => a.headers['x-request-id']);
  await k.waitForLog(() => ids.every((id) => k.logs.some((l) => l.kind === 'audit' && (l.audit as { id?: string }).id === id)), 10_000, 'every download audited');
  for (const id of ids) {
    t.equal(k.logs.filter((l) => l.kind === 'audit' && (l.audit as { id?: string }).id === id).length, 1, `one audit event for ${id}`);
  }
  t.equal(k.logs.filter((l) => l.msg === 'worker died; replacing it').length, 0, 'no worker died');
  t.equal(k.child.exitCode, null, 'the primary is alive');
});
