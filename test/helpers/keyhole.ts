// Starts a real Keyhole (HTTPS, admin listener) on ephemeral loopback ports from a YAML
// string, with logs captured in memory for audit assertions, plus a client that trusts
// the test CA. The config comes from here too: the shared base (`baseYaml`), the local
// provider items, and the temporary folders they serve.
import type { Test } from 'tap';
import { Writable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { createLogger } from '../../src/observe/logger.ts';
import { createRuntime } from '../../src/runtime.ts';
import { KeyholeServer } from '../../src/server/server.ts';
import { signDevToken, type TokenRequest } from '../../src/auth/sign.ts';
import type { RevocationStore } from '../../src/auth/revocation.ts';
import { testCerts } from './certs.ts';

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

export interface BaseYamlOptions {
  /** the `log:` value; debug by default, so a test can read every line */
  log?: string;
  /** more lines for the `server:` section (timeouts, drainTimeout) */
  server?: string;
  /** more lines for the `auth:` section (cookie) */
  auth?: string;
  /** the server certificate and key; the test CA's server pair by default */
  tls?: { cert: string; key: string };
}

/** `text`'s lines indented by `indent`, ending in a newline ('' for no text): YAML to slot into a section. */
export function indentLines(text: string | undefined, indent: string): string {
  return text ? `${text.trimEnd().replace(/^/gm, indent)}\n` : '';
}

/**
 * The server, admin, auth and log sections every test config shares; `providers:` and other
 * sections come in `extra`. Its lines are what tests patch with `.replace`, so keep them stable.
 */
export function baseYaml(extra = '', opts: BaseYamlOptions = {}): string {
  const c = testCerts();
  const tls = opts.tls ?? { cert: c.serverCert, key: c.serverKey };
  return `server:
  listen: { host: 127.0.0.1, port: 0 }
${indentLines(opts.server, '  ')}  tls: { cert: ${tls.cert}, key: ${tls.key} }
admin:
  listen: { host: 127.0.0.1, port: 0 }
  token: \${env:KEYHOLE_TEST_ADMIN}
auth:
  issuer: test-issuer
  audience: keyhole
${indentLines(opts.auth, '  ')}  keys:
    - kid: k1
      algorithms: [HS256]
      secret: \${env:KEYHOLE_TEST_SECRET}
log: ${opts.log ?? '{ level: debug }'}
${extra}`;
}

/** One `local` provider item of a `providers:` list: `name` serves local://NAME/ from `root`. */
export function localProviderItem(name: string, root: string): string {
  return `  - name: ${name}
    kind: local
    match: local://${name}/
    root: ${root}
`;
}

/** `providers:` with the local provider `files` (local://files/ → root) most tests read through; more items may follow. */
export function filesProviderYaml(root: string): string {
  return `providers:\n${localProviderItem('files', root)}`;
}

/** Writes `files` (path under `dir` → content) into `dir`, making folders as needed; returns `dir`. */
export function writeFiles(dir: string, files: Record<string, string | Buffer>): string {
  for (const [path, body] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), body);
  }
  return dir;
}

/** A fresh temporary folder holding `files`; by default the `a.txt` most tests read. */
export function tempFiles(prefix: string, files: Record<string, string | Buffer> = { 'a.txt': 'hello' }): string {
  return writeFiles(mkdtempSync(join(tmpdir(), `keyhole-${prefix}-`)), files);
}

export function dataUrl(uri: string, token?: string): string {
  return `/v1/data?uri=${encodeURIComponent(uri)}${token ? `&token=${encodeURIComponent(token)}` : ''}`;
}

export interface StartOptions {
  /** what `${env:…}` references in the config read, besides the test secrets */
  env?: Record<string, string>;
  revocation?: RevocationStore;
}

export async function startKeyhole(yaml: string, opts: StartOptions = {}): Promise<Running> {
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
    audits: () => logs.filter((l) => l.kind === 'audit' && l.audit !== undefined).map((l) => l.audit!),
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

export interface WithToken {
  k: Running;
  token: string;
  /** the token as an Authorization header */
  auth: { authorization: string };
}

/** A Keyhole from the base config and `yaml` (providers and more), closed on teardown, with a token for `scope`. */
export async function keyholeWith(t: Test, yaml: string, scope: string[], opts: StartOptions = {}): Promise<WithToken> {
  const k = await startKeyhole(baseYaml(yaml), opts);
  t.teardown(() => k.close());
  const token = await k.token({ scope });
  return { k, token, auth: { authorization: `Bearer ${token}` } };
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
