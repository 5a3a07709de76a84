// Redis connections for shared state and the redis provider, through ioredis.
//
// Protocol: pinned to RESP2 (`protocol: 2`). ioredis 6 defaults to RESP3 and silently falls
// back to RESP2 when HELLO fails, so the wire protocol would depend on the server and any
// proxy in between. Keyhole uses GET/SET/GETRANGE/STRLEN/EXISTS/XADD/PUBLISH and a dedicated
// SUBSCRIBE connection: RESP3 gains nothing there (no maps, doubles or push-on-one-socket
// needed), while RESP2 works the same on Redis 2.6 … 8, Sentinel, Cluster and TLS proxies.
// One protocol means one set of reply shapes to test.
//
// TLS: on unless the config says `insecurePlaintext`. Node verifies the server certificate
// against `tls.ca` and the host name (or `tls.servername`). Before anything listens,
// `preflightRedis` opens one TLS connection to each configured endpoint: a TLS or
// certificate problem — or a server that answers in plaintext — refuses start-up with a
// message that says what to fix; a server that is merely down is not a config problem
// (Keyhole starts not-ready, fails closed, and connects when Redis appears).
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { lazyRequire } from '../lazy.ts';

const ioredis = lazyRequire<typeof import('ioredis')>('ioredis');
import type { RedisConnectionConfig } from './schema.ts';
import { clientTlsOptions } from '../tls/client.ts';

export type RedisClient = Redis | Cluster;

/** A configuration problem found while connecting: Keyhole must not start with it. */
export class RedisSetupError extends Error {}

export interface Endpoint {
  host: string;
  port: number;
}

/** Reconnect quickly (Redis restarts should heal within about a second), capped at 1 s. */
export const reconnectDelay = (times: number): number => Math.min(50 * 2 ** Math.min(times, 10), 1000);

export function redisTls(cfg: RedisConnectionConfig): ConnectionOptions | undefined {
  const useTls = cfg.url !== undefined ? new URL(cfg.url).protocol === 'rediss:' : !cfg.insecurePlaintext;
  if (!useTls) return undefined;
  return clientTlsOptions(cfg.tls);
}

/** The hosts the config names: the URL's host, the sentinels, or the cluster's startup nodes. */
export function redisEndpoints(cfg: RedisConnectionConfig): Endpoint[] {
  if (cfg.url !== undefined) {
    const u = new URL(cfg.url);
    return [{ host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : 6379 }];
  }
  return (cfg.sentinel?.nodes ?? cfg.cluster?.nodes ?? []).map((n) => ({ host: n.host, port: n.port }));
}

function urlDb(cfg: RedisConnectionConfig): number | undefined {
  if (cfg.url === undefined) return undefined;
  const path = new URL(cfg.url).pathname;
  return path.length > 1 ? Number(path.slice(1)) : undefined;
}

export interface ClientOptions {
  /** CLIENT SETNAME, to tell Keyhole's connections apart in CLIENT LIST */
  name: string;
  /** overrides the configured database (the redis provider's redis://N/ URIs) */
  db?: number;
  /** queue commands while disconnected (true) or fail them at once (false: fail fast) */
  offlineQueue?: boolean;
  /** resubscribe channels after a reconnect by itself (default true) */
  autoResubscribe?: boolean;
}

function commonOptions(cfg: RedisConnectionConfig, opts: ClientOptions): RedisOptions {
  const tls = redisTls(cfg);
  return {
    protocol: 2,
    connectionName: opts.name,
    username: cfg.username ?? (cfg.url !== undefined ? decodeURIComponent(new URL(cfg.url).username) || undefined : undefined),
    password: cfg.password?.reveal(),
    connectTimeout: cfg.connectTimeout,
    commandTimeout: cfg.commandTimeout,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: opts.offlineQueue ?? false,
    retryStrategy: reconnectDelay,
    autoResubscribe: opts.autoResubscribe ?? true,
    // CLIENT SETINFO only exists from Redis 7.2; skip the failed round trip on older servers.
    disableClientInfo: true,
    ...(tls ? { tls } : {}),
  };
}

/** A new ioredis client (standalone, Sentinel or Cluster) that reconnects by itself. */
export function createRedisClient(cfg: RedisConnectionConfig, opts: ClientOptions): RedisClient {
  const common = commonOptions(cfg, opts);
  if (cfg.cluster) {
    const { retryStrategy: _r, enableOfflineQueue, ...redisOptions } = common;
    const clusterOptions: ClusterOptions = {
      redisOptions,
      enableOfflineQueue,
      clusterRetryStrategy: reconnectDelay,
      // Nodes announce IPs: hostname verification then needs tls.servername (documented).
      slotsRefreshTimeout: cfg.connectTimeout,
    };
    return new (ioredis().Cluster)(
      cfg.cluster.nodes.map((n) => ({ host: n.host, port: n.port })),
      clusterOptions,
    );
  }
  const db = opts.db ?? cfg.db ?? urlDb(cfg) ?? 0;
  if (cfg.sentinel) {
    const s = cfg.sentinel;
    const sentinelTls = s.tls && common.tls !== undefined;
    return new (ioredis().Redis)({
      ...common,
      db,
      name: s.name,
      sentinels: s.nodes.map((n) => ({ host: n.host, port: n.port })),
      sentinelUsername: s.username,
      sentinelPassword: s.password?.reveal(),
      enableTLSForSentinelMode: sentinelTls,
      ...(sentinelTls ? { sentinelTLS: common.tls } : {}),
      sentinelRetryStrategy: reconnectDelay,
    });
  }
  const ep = redisEndpoints(cfg)[0]!;
  return new (ioredis().Redis)({ ...common, host: ep.host, port: ep.port, db });
}

/** True when a client can run commands now (no reconnect under way). */
export function isUp(client: RedisClient): boolean {
  return client.status === 'ready';
}

const CODE_HELP: Record<string, string> = {
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'the Redis server demands a client certificate: set tls.cert and tls.key',
  ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE: 'the TLS handshake failed (client certificate missing, or no common cipher/version)',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'the Redis server refused the client certificate: it is not issued by a CA the server trusts',
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'the Redis server refused the client certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN: 'the Redis server refused the client certificate',
  ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR: 'the Redis server refused the client certificate (key does not match?)',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: 'the Redis server says the client certificate has expired',
  ERR_TLS_CERT_ALTNAME_INVALID: "the Redis server's certificate does not name the host Keyhole connects to: set tls.servername to a name in it, or connect by that name",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the Redis server's certificate does not verify against tls.ca",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the Redis server's certificate does not verify against tls.ca",
  UNABLE_TO_GET_ISSUER_CERT: "the Redis server's certificate does not verify against tls.ca",
  SELF_SIGNED_CERT_IN_CHAIN: "the Redis server's certificate chain ends in a CA not in tls.ca",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the Redis server's certificate is self-signed and not in tls.ca",
  CERT_HAS_EXPIRED: "the Redis server's certificate has expired",
  CERT_NOT_YET_VALID: "the Redis server's certificate is not valid yet (clock?)",
  ERR_SSL_WRONG_VERSION_NUMBER: 'the server does not speak TLS on this port (plaintext?)',
  ERR_SSL_PACKET_LENGTH_TOO_LONG: 'the server does not speak TLS on this port (plaintext?)',
};

/** One line an operator can act on, for an ioredis or socket error. Never includes secrets. */
export function explainRedisError(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { code?: string };
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const help = code ? CODE_HELP[code] : undefined;
  if (help) return `${help} (${code})`;
  const message = String(e?.message ?? err).split('\n')[0]!;
  if (/WRONGPASS|NOAUTH|invalid username-password/i.test(message)) return `Redis refused the credentials: check username/password (${message.split(' ')[0]})`;
  if (/tlsv13 alert certificate required/i.test(message)) return CODE_HELP.ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED!;
  if (/alert unknown ca/i.test(message)) return CODE_HELP.ERR_SSL_TLSV1_ALERT_UNKNOWN_CA!;
  return code ? `${message} (${code})` : message;
}

function isConfigProblem(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && CODE_HELP[code] !== undefined) return true;
  return /WRONGPASS|alert|certificate/i.test(String((err as Error)?.message ?? ''));
}

type Probe = { ok: true; reply: string } | { ok: false; err: Error; connected: boolean };

/** RESP array of bulk strings: binary-safe, so a password is sent as it is. */
export function respCommand(args: readonly string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) parts.push(`$${Buffer.byteLength(a)}\r\n${a}\r\n`);
  return Buffer.from(parts.join(''));
}

const PING = Buffer.from('PING\r\n');

const RESP_FIRST_BYTE = new Set([0x2b /* + */, 0x2d /* - */, 0x24 /* $ */, 0x2a /* * */, 0x3a /* : */]);

/** Opens `socket`, sends `hello` (PING or AUTH), and waits for any RESP answer (a -NOAUTH to PING counts: the transport works). */
function pingOver(socket: Socket, readyEvent: 'connect' | 'secureConnect', timeoutMs: number, hello: Buffer = PING): Promise<Probe> {
  return new Promise((resolve) => {
    let connected = false;
    let settled = false;
    const done = (p: Probe) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(p);
    };
    const timer = setTimeout(() => {
      const err = Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
      done({ ok: false, err, connected });
    }, timeoutMs);
    socket.once('connect', () => {
      connected = true;
    });
    socket.once(readyEvent, () => socket.write(hello));
    socket.once('data', (b: Buffer) => {
      if (RESP_FIRST_BYTE.has(b[0]!)) done({ ok: true, reply: b.toString('latin1', 0, Math.min(b.length, 200)).split('\r\n')[0]! });
      else done({ ok: false, err: new Error('the server did not answer like Redis'), connected });
    });
    socket.once('error', (err) => done({ ok: false, err, connected }));
    socket.once('close', () => done({ ok: false, err: Object.assign(new Error('the server closed the connection'), { code: 'ECONNRESET' }), connected }));
  });
}

interface Credentials {
  username: string | undefined;
  password: string | undefined;
}

/** With credentials, the probe's first command is AUTH: a refused password is a config problem too. */
function authVerdict(where: string, reply: string, creds: Credentials): { problem?: string } {
  if (creds.password === undefined || reply.startsWith('+')) return {};
  // Redis error replies name the error, never the password sent.
  return { problem: `${where}: Redis refused the credentials (${reply.slice(1).split(' ')[0]}): check username/password` };
}

async function probeEndpoint(ep: Endpoint, tls: ConnectionOptions | undefined, timeoutMs: number, creds: Credentials): Promise<{ problem?: string; unreachable?: string }> {
  const where = `${ep.host}:${ep.port}`;
  const hello = creds.password !== undefined ? respCommand(['AUTH', ...(creds.username ? [creds.username] : []), creds.password]) : PING;
  if (!tls) {
    const r = await pingOver(netConnect({ host: ep.host, port: ep.port }), 'connect', timeoutMs, hello);
    if (r.ok) return authVerdict(where, r.reply, creds);
    if (r.connected && (r.err as NodeJS.ErrnoException).code === 'ECONNRESET') {
      return { problem: `${where}: the server reset a plaintext connection: it probably demands TLS (use rediss:// and tls)` };
    }
    return { unreachable: `${where}: ${explainRedisError(r.err)}` };
  }
  const r = await pingOver(tlsConnect({ host: ep.host, port: ep.port, ...tls }), 'secureConnect', timeoutMs, hello);
  if (r.ok) return authVerdict(where, r.reply, creds);
  const code = (r.err as NodeJS.ErrnoException).code;
  const tlsNeverStarted = code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || (r.connected && code === 'ETIMEDOUT');
  if (tlsNeverStarted) {
    // A plaintext Redis reads a ClientHello as a half-sent inline command and waits: ask it plainly.
    const plain = await pingOver(netConnect({ host: ep.host, port: ep.port }), 'connect', timeoutMs);
    if (plain.ok) return { problem: `${where}: the server answers in plaintext, but the config demands TLS; refusing to connect without TLS` };
  }
  if (isConfigProblem(r.err)) return { problem: `${where}: ${explainRedisError(r.err)}` };
  if (r.connected && code === 'ECONNRESET') {
    return { problem: `${where}: the server closed the connection during the TLS handshake: ${explainRedisError(r.err)}; check tls.cert/tls.key` };
  }
  return { unreachable: `${where}: ${explainRedisError(r.err)}` };
}

export interface PreflightResult {
  /** endpoints that could not be reached (Keyhole starts anyway, not ready) */
  unreachable: string[];
}

/**
 * One TLS handshake + PING to every configured endpoint. Throws RedisSetupError for a
 * problem that waiting will not fix (certificates, names, a plaintext server when TLS is
 * demanded); returns the endpoints that were merely unreachable.
 */
export async function preflightRedis(cfg: RedisConnectionConfig, label = 'redis'): Promise<PreflightResult> {
  const tls = redisTls(cfg);
  const sentinelPlain = cfg.sentinel !== undefined && !cfg.sentinel.tls;
  const creds: Credentials = cfg.sentinel
    ? { username: cfg.sentinel.username, password: cfg.sentinel.password?.reveal() }
    : { username: commonOptions(cfg, { name: 'preflight' }).username, password: cfg.password?.reveal() };
  const results = await Promise.all(redisEndpoints(cfg).map((ep) => probeEndpoint(ep, sentinelPlain ? undefined : tls, cfg.connectTimeout, creds)));
  const problems = results.flatMap((r) => (r.problem ? [r.problem] : []));
  if (problems.length > 0) throw new RedisSetupError(`${label}: ${problems.join('; ')}`);
  return { unreachable: results.flatMap((r) => (r.unreachable ? [r.unreachable] : [])) };
}

/** Resolves once `client` is ready, or rejects with the last connection error after `timeoutMs`. */
export function whenReady(client: RedisClient, timeoutMs: number): Promise<void> {
  if (isUp(client)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    let last: unknown;
    const onError = (err: unknown) => {
      last = err;
    };
    const onReady = () => {
      cleanup();
      resolve();
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(last ? explainRedisError(last) : `not ready within ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      client.off('error', onError);
      client.off('ready', onReady);
    };
    client.on('error', onError);
    client.once('ready', onReady);
  });
}
