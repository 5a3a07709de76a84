// Audit events of downloads whose client closes at once: a download the client received
// whole is audited complete, with the client's address, however it closes (FIN, drop or TCP
// reset) the moment the last body byte arrives; one it left early is audited aborted, still
// with its address (a reset connection has none by the time the response closes: the
// address is read when the request begins). Real upstreams: nginx (keep-alive) and Python's
// http.server (HTTP/1.0, Content-Length then close), beside a local file.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import { connect } from 'node:tls';
import { auditFor, baseYaml, dataUrl, startKeyhole, type Running } from '../helpers/keyhole.ts';
import { testCerts } from '../helpers/certs.ts';
import { startNginx, startPythonHttpServer } from '../helpers/real-servers.ts';

const FILES: Record<string, Buffer> = { 'tiny.bin': randomBytes(100), 'small.bin': randomBytes(16 * 1024), 'medium.bin': randomBytes(1 << 20) };
const ca = readFileSync(testCerts().caCert);
const ROUNDS = 20;

async function keyholeFor(t: Test, origin: string, dir: string): Promise<Running> {
  const k = await startKeyhole(
    baseYaml(`providers:
  - name: up
    kind: http
    match: https://up.test/
    baseUrl: ${origin}/
    allowPrivateNetworks: true
  - { name: disk, kind: local, match: "local://disk/", root: ${dir} }
`),
  );
  t.teardown(() => k.close());
  return k;
}

interface Leaving {
  /** `end`: TLS close_notify and FIN; `destroy`: the socket dropped; `reset`: a TCP RST */
  how: 'end' | 'destroy' | 'reset';
  /** stop reading for a moment after the head, so Keyhole's writes back up */
  stall?: boolean;
  /** leave after this many body bytes instead of after the last one */
  after?: number;
}

/**
 * GETs `path` and closes the connection the moment the last body byte (by Content-Length),
 * or the `after`th, is in. Resolves with the request id and how many body bytes came.
 */
function getAndClose(k: Running, path: string, token: string, { how, stall = false, after = -1 }: Leaving): Promise<{ id: string; received: number; expected: number }> {
  const port = Number(new URL(k.base).port);
  return new Promise((resolve, reject) => {
    const raw = connectTcp(port, '127.0.0.1');
    const socket = connect({ socket: raw, servername: 'localhost', ca });
    socket.on('error', reject);
    let head = Buffer.alloc(0);
    let expected = -1;
    let received = 0;
    let id = '';
    socket.on('secureConnect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\n\r\n`));
    socket.on('data', (chunk: Buffer) => {
      if (expected < 0) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const text = head.subarray(0, end).toString('latin1');
        if (!/^HTTP\/1\.1 200 /.test(text)) return reject(new Error(`not a 200: ${text}`));
        expected = Number(/\r\ncontent-length: (\d+)/i.exec(text)![1]);
        id = /\r\nx-request-id: ([^\r]+)/i.exec(text)![1]!;
        chunk = head.subarray(end + 4);
        if (stall) {
          socket.pause();
          setTimeout(() => socket.resume(), 150);
        }
      }
      received += chunk.length;
      if (received >= (after >= 0 ? after : expected)) {
        socket.removeAllListeners('data');
        if (how === 'end') socket.end();
        else if (how === 'reset') raw.resetAndDestroy();
        else socket.destroy();
        resolve({ id, received, expected });
      }
    });
  });
}

for (const [name, start] of [
  ['nginx', (t: Test) => startNginx(t, '    location / { }', FILES)],
  ['python3 -m http.server (HTTP/1.0)', (t: Test) => startPythonHttpServer(t, FILES)],
] as const) {
  t.test(`${name}: every download the client got whole is audited complete, with the client`, async (t) => {
    const up = await start(t);
    const k = await keyholeFor(t, up.origin, up.dir);
    const token = await k.token({ scope: ['https://up.test/', 'local://disk/'] });
    const wrong: string[] = [];
    let count = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const jobs = Object.keys(FILES).flatMap((file) =>
        (['end', 'destroy', 'reset'] as const).flatMap((how) =>
          ['https://up.test/', 'local://disk/'].map(async (base) => {
            const got = await getAndClose(k, dataUrl(`${base}${file}`), token, { how, stall: file === 'medium.bin' && i % 3 === 0 });
            t.equal(got.received, got.expected, 'the client got the whole body');
            const audit = await auditFor(k, got.id);
            count++;
            if (audit.aborted !== false || audit.client !== '127.0.0.1' || audit.bytes !== FILES[file]!.length || audit.reason !== 'ok') {
              wrong.push(`${base}${file} (${how}): ${JSON.stringify(audit)}`);
            }
          }),
        ),
      );
      await Promise.all(jobs);
    }
    t.same(wrong, [], `all ${count} complete downloads audited aborted: false, client 127.0.0.1, every byte`);
  });
}

t.test('a client that resets mid-body is audited aborted, with its address', async (t) => {
  // Larger than what the kernel's socket buffers hold: Keyhole is still sending when the client leaves.
  const up = await startNginx(t, '    location / { }', { 'large.bin': randomBytes(32 << 20) });
  const k = await keyholeFor(t, up.origin, up.dir);
  const token = await k.token({ scope: ['https://up.test/', 'local://disk/'] });
  for (const base of ['https://up.test/', 'local://disk/']) {
    for (let i = 0; i < 5; i++) {
      const got = await getAndClose(k, dataUrl(`${base}large.bin`), token, { how: 'reset', stall: true, after: 64 * 1024 });
      t.ok(got.received < got.expected, 'the client left early');
      t.match(await auditFor(k, got.id), { aborted: true, client: '127.0.0.1', reason: 'ok' }, `${base}large.bin, reset after ${got.received} bytes`);
    }
  }
});
