// Starts a real Keyhole (HTTPS, admin listener) on ephemeral loopback ports from a YAML
// string, with logs captured in memory for audit assertions, plus a client that trusts
// the test CA.
import { Writable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { readFileSync } from 'node:fs';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createLogger } from '../../src/observe/logger.js';
import { createRuntime } from '../../src/server/runtime.js';
import { KeyholeServer } from '../../src/server/server.js';
import { signDevToken, type TokenRequest } from '../../src/auth/sign.js';
import type { RevocationStore } from '../../src/auth/revocation.js';
import { testCerts } from './certs.js';

export const TEST_SECRET = 'test-secret-0123456789abcdef-0123456789';
export const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';

export interface LogLine {
  level: string;
  msg: string;
  kind?: string;
  audit?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface Running {
  config: Config;
  server: KeyholeServer;
  base: string;
  admin: string;
  logs: LogLine[];
  /** raw log text, for "never appears in logs" assertions */
  rawLogs(): string;
  audits(): Record<string, unknown>[];
  token(req: Partial<TokenRequest> & { sub?: string }): Promise<string>;
  /** undici client trusting the test CA */
  dispatcher: Dispatcher;
  get(path: string, headers?: Record<string, string>, method?: 'GET' | 'HEAD' | 'OPTIONS' | 'POST' | 'DELETE' | 'PUT', body?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>;
  close(): Promise<void>;
}

/** The auth and server sections every test config shares; `providers:` and extras come after. */
export function baseYaml(extra = ''): string {
  const c = testCerts();
  return `server:
  listen: { host: 127.0.0.1, port: 0 }
  tls: { cert: ${c.serverCert}, key: ${c.serverKey} }
admin:
  listen: { host: 127.0.0.1, port: 0 }
  token: \${env:KEYHOLE_TEST_ADMIN}
auth:
  issuer: test-issuer
  audience: keyhole
  keys:
    - kid: k1
      algorithms: [HS256]
      secret: \${env:KEYHOLE_TEST_SECRET}
log: { level: debug }
${extra}`;
}

export function dataUrl(uri: string, token?: string): string {
  return `/v1/data?uri=${encodeURIComponent(uri)}${token ? `&token=${encodeURIComponent(token)}` : ''}`;
}

export async function startKeyhole(yaml: string, opts: { env?: Record<string, string>; revocation?: RevocationStore } = {}): Promise<Running> {
  const env = { ...process.env, KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN, ...opts.env };
  const config = parseConfig(yaml, { env });
  const chunks: string[] = [];
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      const text = chunk.toString();
      chunks.push(text);
      for (const line of text.split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      cb();
    },
  });
  const logger = createLogger({ level: config.log.level, destination: sink });
  const runtime = await createRuntime(config, { logger, ...(opts.revocation ? { revocation: opts.revocation } : {}) });
  const server = new KeyholeServer(runtime);
  const where = await server.listen();
  const scheme = config.server.tls ? 'https' : 'http';
  const base = `${scheme}://localhost:${where.data.port}`;
  const admin = `http://127.0.0.1:${where.admin.port}`;
  const dispatcher = new Agent({ connect: { ca: readFileSync(testCerts().caCert) } });
  const running: Running = {
    config,
    server,
    base,
    admin,
    logs,
    rawLogs: () => chunks.join(''),
    audits: () => logs.filter((l) => l.kind === 'audit').map((l) => l.audit!),
    token: (req) => signDevToken(config, { sub: 'alice', ...req }),
    dispatcher,
    async get(path, headers = {}, method = 'GET', body) {
      const target = path.startsWith('http') ? path : base + path;
      const res = await request(target, { method, headers, dispatcher, ...(body !== undefined ? { body } : {}) });
      const buf = Buffer.from(await res.body.arrayBuffer());
      return { status: res.statusCode, headers: res.headers as Record<string, string | string[] | undefined>, body: buf };
    },
    async close() {
      await server.close(1000);
      await dispatcher.close();
    },
  };
  return running;
}

/** Waits until the audit event for a request id has been written (it is written on close). */
export async function auditFor(k: Running, requestId: string, timeoutMs = 2000): Promise<Record<string, unknown>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const hit = k.audits().find((a) => a.id === requestId);
    if (hit) return hit;
    if (Date.now() > until) throw new Error(`no audit event for ${requestId}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Waits for the lines a request id leads to: its `refused` log lines and its audit events. */
export async function linesFor(k: Running, requestId: string, timeoutMs = 2000): Promise<LogLine[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const hits = k.logs.filter((l) => l.requestId === requestId || l.audit?.id === requestId);
    if (hits.length > 0) return hits;
    if (Date.now() > until) throw new Error(`no log line for ${requestId}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
