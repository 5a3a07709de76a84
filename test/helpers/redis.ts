// A real redis-server for tests: TLS only (plain port 0 = closed) with client certificates
// demanded, certificates from the test dev CA, no persistence, on ephemeral loopback ports.
// Never the machine's own Redis on 6379. `stop()` kills it; `restart()` brings it back on the
// same port (for "Redis returns" tests). Also the config that points Keyhole at it: the
// revocation store, a `redis` provider, and a Keyhole keeping its revocations there.
import type { Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testCerts } from './certs.ts';
import { redisConnectionSchema } from '../../src/redis/schema.ts';
import { createRedisClient, whenReady, type RedisClient } from '../../src/redis/connect.ts';
import type { RedisRevocationStore } from '../../src/auth/revocation-redis.ts';
import { baseYaml, filesProviderYaml, indentLines, startKeyhole, type Running } from './keyhole.ts';

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
  /** SIGSTOP: the process hangs with its sockets open (a frozen server, a silent partition) */
  pause(): void;
  /** SIGCONT */
  resume(): void;
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

export function launch(args: string[], readyMarker = 'Ready to accept connections'): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (b: Buffer) => {
      out += b.toString();
      if (out.includes(readyMarker)) {
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

export async function startRedis(opts: { plainPort?: boolean; password?: string } = {}): Promise<TestRedis> {
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
    ...(opts.password ? ['--requirepass', opts.password] : []),
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
    p.kill('SIGCONT'); // a paused process must run to die
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
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
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

export interface TestProcess {
  port: number;
  stop(): Promise<void>;
}

async function stopChild(child: ChildProcess, dir: string): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
}

/** A TLS Sentinel (mTLS to clients and to the master) watching `master` as `mymaster`. */
export async function startSentinel(master: TestRedis): Promise<TestProcess> {
  const c = testCerts();
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-sentinel-'));
  const port = await freePort();
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      'port 0',
      `tls-port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `tls-cert-file ${c.serverCert}`,
      `tls-key-file ${c.serverKey}`,
      `tls-ca-cert-file ${c.caCert}`,
      `tls-client-cert-file ${c.clientCert}`,
      `tls-client-key-file ${c.clientKey}`,
      'tls-auth-clients yes',
      'tls-replication yes',
      `sentinel monitor mymaster 127.0.0.1 ${master.port} 1`,
      '',
    ].join('\n'),
  );
  const child = await launch([conf, '--sentinel', '--logfile', ''], '+monitor master mymaster');
  return { port, stop: () => stopChild(child, dir) };
}

/** A one-node TLS Redis Cluster (all 16384 slots), announcing 127.0.0.1. */
export async function startClusterNode(): Promise<TestProcess> {
  const c = testCerts();
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-cluster-'));
  const port = await freePort();
  const child = await launch([
    '--bind', '127.0.0.1',
    '--port', '0',
    '--tls-port', String(port),
    '--tls-cert-file', c.serverCert,
    '--tls-key-file', c.serverKey,
    '--tls-ca-cert-file', c.caCert,
    '--tls-client-cert-file', c.clientCert,
    '--tls-client-key-file', c.clientKey,
    '--tls-auth-clients', 'yes',
    '--tls-cluster', 'yes',
    '--cluster-enabled', 'yes',
    '--cluster-announce-ip', '127.0.0.1',
    '--cluster-config-file', join(dir, 'nodes.conf'),
    '--dir', dir,
    '--save', '',
    '--appendonly', 'no',
    '--logfile', '',
  ]);
  return { port, stop: () => stopChild(child, dir) };
}

/**
 * A plain ioredis client for seeding and inspecting a test server, ready when returned.
 * Generous timeouts: on a loaded 2-core machine a TLS connect can take a while.
 */
export async function testClient(target: { url: string }, opts: { db?: number; name?: string } = {}): Promise<RedisClient> {
  const c = testCerts();
  const conn = redisConnectionSchema.parse({ url: target.url, tls: { ca: c.caCert, cert: c.clientCert, key: c.clientKey }, connectTimeout: '10s', commandTimeout: '10s' });
  const client = createRedisClient(conn, { name: opts.name ?? 'test-client', offlineQueue: true, ...(opts.db !== undefined ? { db: opts.db } : {}) });
  await whenReady(client, 20_000);
  return client;
}

/**
 * The `revocation:` and `redis:` sections that keep revocations in `r`. `revocation`: more
 * of its settings (cacheTtl); `redis`: the connection's own lines, generous by default.
 */
export function redisRevocationYaml(r: TestRedis, opts: { revocation?: string; redis?: string } = {}): string {
  return `revocation: { store: redis${opts.revocation ? `, ${opts.revocation}` : ''} }
redis:
${r.yaml('  ', opts.redis ?? 'connectTimeout: 10s\ncommandTimeout: 3s')}
`;
}

/**
 * A fresh test Redis and a Keyhole keeping its revocations there, with the `files` provider
 * on `root`; both stopped on teardown. Resolves once Keyhole's Redis link is up.
 */
export async function keyholeOnRedis(t: Test, root: string): Promise<{ k: Running; r: TestRedis; store: RedisRevocationStore }> {
  const r = await startRedis();
  t.teardown(() => r.stop());
  const k = await startKeyhole(baseYaml(redisRevocationYaml(r) + filesProviderYaml(root)));
  t.teardown(() => k.close());
  const store = k.server.current.revocation as RedisRevocationStore;
  await store.whenConnected();
  return { k, r, store };
}

/** One `redis` provider item of a `providers:` list, reading `r`; `extra`: more of its YAML (chunkSize, contentTypeKey). */
export function redisProviderItem(r: TestRedis, opts: { name?: string; match?: string; extra?: string } = {}): string {
  return `  - name: ${opts.name ?? 'blobs'}
    kind: redis
    match: ${opts.match ?? 'redis://0/'}
${indentLines(opts.extra, '    ')}    redis:
${r.yaml('      ', 'commandTimeout: 10s')}
`;
}
