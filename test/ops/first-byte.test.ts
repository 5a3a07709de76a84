// The README's first command, measured the way a new ops engineer meets it: a fresh clone,
// `npm ci --omit=dev` (no test servers, browser driver, bench tools or TypeScript), `npm
// start` without a build, then `./keyhole token` + curl for the first served byte
// (scripts/first-byte.sh). Times are printed, not asserted (they are the machine's).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';

t.setTimeout(600_000);

const ROOT = join(import.meta.dirname, '..', '..');

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

t.test('clone → npm ci --omit=dev → npm start → ./keyhole token + curl serves the sample', async (t) => {
  const port = await freePort();
  const r = spawnSync('bash', [join(ROOT, 'scripts', 'first-byte.sh'), ROOT], {
    encoding: 'utf8',
    env: { ...process.env, PORT: String(port), ADMIN_PORT: String(await freePort()) },
    timeout: 540_000,
  });
  t.equal(r.status, 0, `first-byte.sh: ${r.stdout}${r.stderr}`);
  t.match(r.stdout, /^first byte: 1 line\(s\) served from local:\/\/samples\/hello\.txt$/m);
  for (const phase of ['git clone', 'npm ci --omit=dev', 'npm start until listening', './keyhole token \\+ curl', 'total: clone to first byte']) {
    t.match(r.stdout, new RegExp(`^${phase} +\\d+\\.\\d s$`, 'm'), `${phase} is timed`);
  }
  t.match(r.stdout, /^dev tools installed: none$/m, 'running Keyhole installs none of the dev dependencies');
  t.match(r.stdout, /node v24\./, 'on the Node 24 npm brought');
  // npm start's node is stopped with npm (a leftover Keyhole was found serving after earlier runs).
  const refused = await new Promise<string>((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  t.equal(refused, 'ECONNREFUSED', 'nothing is left listening when the script ends');
  t.comment(r.stdout.trim());
});
