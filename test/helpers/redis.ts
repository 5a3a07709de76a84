// A real redis-server for tests: TLS only (plain port 0 = closed) with client certificates
// demanded, certificates from the test dev CA, no persistence, on ephemeral loopback ports.
// Never the machine's own Redis on 6379. `stop()` kills it; `restart()` brings it back on the
// same port (for "Redis returns" tests).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testCerts } from './certs.js';

export interface TestRedis {
  /** the TLS port */
  port: number;
  /** a plaintext port, when started with `plainPort: true` (for "server offers plaintext" cases) */
  plainPort: number | undefined;
  /** `rediss://localhost:PORT` */
  url: string;
  /** YAML for a `redis:` connection block with the good client certificate */
  yaml(indent?: string, extra?: string): string;
  /** kills the server (SIGKILL: no goodbye to clients) and waits for its exit */
  kill(): Promise<void>;
  /** starts it again on the same ports, with an empty dataset */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** A port that was free a moment ago (redis-server cannot report an ephemeral TLS port). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function launch(args: string[]): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (b: Buffer) => {
      out += b.toString();
      if (out.includes('Ready to accept connections')) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.resume();
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready:\n${out}`)));
  });
}

export async function startRedis(opts: { plainPort?: boolean } = {}): Promise<TestRedis> {
  const c = testCerts();
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-redis-'));
  const port = await freePort();
  const plainPort = opts.plainPort ? await freePort() : undefined;
  const args = [
    '--bind', '127.0.0.1',
    '--port', String(plainPort ?? 0),
    '--tls-port', String(port),
    '--tls-cert-file', c.serverCert,
    '--tls-key-file', c.serverKey,
    '--tls-ca-cert-file', c.caCert,
    '--tls-auth-clients', 'yes',
    '--save', '',
    '--appendonly', 'no',
    '--dir', dir,
    '--logfile', '',
  ];
  let child: ChildProcess | undefined = await launch(args);
  const exited = (p: ChildProcess) =>
    new Promise<void>((resolve) => {
      if (p.exitCode !== null || p.signalCode !== null) return resolve();
      p.once('exit', () => resolve());
    });
  const kill = async () => {
    const p = child;
    child = undefined;
    if (!p) return;
    p.kill('SIGKILL');
    await exited(p);
  };
  return {
    port,
    plainPort,
    url: `rediss://localhost:${port}`,
    yaml(indent = '  ', extra = '') {
      return [
        `${indent}url: rediss://localhost:${port}`,
        `${indent}tls: { ca: ${c.caCert}, cert: ${c.clientCert}, key: ${c.clientKey} }`,
        ...(extra ? [extra.replace(/^/gm, indent)] : []),
      ].join('\n');
    },
    kill,
    async restart() {
      await kill();
      // The port was just released by a SIGKILLed process: retry briefly if it is still held.
      for (let attempt = 0; ; attempt++) {
        try {
          child = await launch(args);
          return;
        } catch (err) {
          if (attempt >= 20) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
