// Revocation shared by every replica, in Redis.
//
// Keys: `<prefix>revoked:jti:<jti>` (value: until when it holds — the caller's expiry, never
// less than `subjectTtlSeconds` from the revocation — expiring then) and
// `<prefix>revoked:sub:<sub>` (value: the not-before second; expiring once every token
// issued before it is past the longest token lifetime), and `<prefix>revoked:session:<sha256>`
// (an app session cookie logged out through Keyhole; value: until when, expiring then). A revocation is written and
// published on `<prefix>revocations` in one Lua call; every replica subscribes and updates
// its cache at once, so a revocation made through one replica holds on all of them within
// a pub/sub hop.
//
// Hot path: a lookup answered by the replica's LRU cache costs no I/O and no promise. A miss
// asks Redis once (jti and sub in parallel). The cache is only trusted while the pub/sub
// connection is up: after any disconnect it is cleared, because invalidations published
// meanwhile were lost.
//
// Redis unreachable: `isRevoked` throws RevocationUnavailable (the routes answer 503
// revocation_unavailable), `ready()` is false (/readyz 503), and a metric counts it — unless
// `onRedisError: allow` was chosen explicitly. ioredis reconnects by itself (≤ 1 s backoff);
// the store is ready again once both connections are back and the channel is subscribed.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import type { Metrics } from '../observe/metrics.ts';
import type { RedisRevocationConfig, RedisSectionConfig } from '../redis/schema.ts';
import { createRedisClient, explainRedisError, isUp, preflightRedis, type RedisClient } from '../redis/connect.ts';
import type { SessionClaims } from './claims.ts';
import { revokedBySubject, RevocationUnavailable, type RevocationStore } from './revocation.ts';

/** SET the key to ARGV[1] unless it already holds a later second, expire it, then PUBLISH. */
const REVOKE_LUA = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local value = tonumber(ARGV[1])
if value > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  value = current
end
redis.call('PUBLISH', ARGV[3], ARGV[4] .. value)
return value
`;

/**
 * What a replica learns from the channel: `j <id> <exp>`, `s <id> <notBefore>` or
 * `l <sha256> <until>` (a logged-out app session; id JSON-encoded).
 */
export interface Invalidation {
  kind: 'jti' | 'sub' | 'session';
  id: string;
  value: number;
}

export interface RedisRevocationOptions {
  connection: RedisSectionConfig;
  settings: RedisRevocationConfig;
  /**
   * how long a subject revocation must outlive its second, and the least a jti revocation is
   * kept from now: the longest token lifetime + skew
   */
  subjectTtlSeconds: number;
  logger: Logger;
  metrics: Metrics;
}

// "no subject revocation" in the cache (lru-cache stores no undefined).
const NONE = 0;
const HEARTBEAT_MS = 1000;

export class RedisRevocationStore extends EventEmitter implements RevocationStore {
  private readonly cmd: RedisClient;
  private readonly sub: RedisClient;
  private readonly jtis: LRUCache<string, true | false>;
  private readonly subjects: LRUCache<string, number>;
  /** logged-out app sessions: true, or false for "not logged out" (what Redis said) */
  private readonly sessions: LRUCache<string, boolean>;
  private readonly prefix: string;
  private readonly channel: string;
  private readonly allowOnError: boolean;
  /** bumped by every invalidation and resubscription: a lookup that started before does not cache */
  private epoch = 0;
  private subscribed = false;
  private closed = false;
  private wasUp = false;
  private lastError: string | undefined;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly probe = (): boolean => this.connected();
  private readonly hits: ReturnType<Metrics['revocationLookups']['labels']>;
  private readonly misses: ReturnType<Metrics['revocationLookups']['labels']>;

  /** Checks TLS and certificates first (RedisSetupError: refuse to start), then connects. */
  static async open(opts: RedisRevocationOptions): Promise<RedisRevocationStore> {
    const { unreachable } = await preflightRedis(opts.connection, 'redis');
    if (unreachable.length > 0) {
      opts.logger.warn({ unreachable }, 'redis is unreachable at start-up: revocation fails closed until it answers');
    }
    return new RedisRevocationStore(opts);
  }

  private readonly opts: RedisRevocationOptions;
  constructor(opts: RedisRevocationOptions) {
    super();
    this.opts = opts;
    const { connection, settings } = opts;
    this.prefix = connection.keyPrefix;
    this.channel = `${this.prefix}revocations`;
    this.allowOnError = settings.onRedisError === 'allow';
    const ttl = Math.max(1, settings.cacheTtl);
    this.jtis = new LRUCache({ max: Math.max(1, settings.cacheMax), ttl, ttlAutopurge: false });
    this.subjects = new LRUCache({ max: Math.max(1, settings.cacheMax), ttl, ttlAutopurge: false });
    this.sessions = new LRUCache({ max: Math.max(1, settings.cacheMax), ttl, ttlAutopurge: false });
    this.cmd = createRedisClient(connection, { name: 'keyhole-revocation' });
    // Subscriptions are made by hand on every `ready` (autoResubscribe off) so the store knows
    // exactly when invalidations flow again, and clears its cache at that moment.
    this.sub = createRedisClient(connection, { name: 'keyhole-revocation-sub', offlineQueue: true, autoResubscribe: false });
    this.watch(this.cmd, 'commands');
    this.watch(this.sub, 'pub/sub');
    this.sub.on('ready', () => void this.subscribe());
    this.sub.on('close', () => this.lost());
    this.sub.on('end', () => this.lost());
    this.sub.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.receive(message);
    });
    opts.metrics.redisProbe = this.probe;
    this.hits = opts.metrics.revocationLookups.labels('hit');
    this.misses = opts.metrics.revocationLookups.labels('miss');
    // A Redis that hangs without closing the socket (frozen, silent partition) would leave
    // the cache trusted while invalidations no longer arrive: a PING on the subscriber
    // connection every second, bounded by commandTimeout, turns that into "down".
    this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_MS).unref();
    if (this.allowOnError) opts.logger.warn('revocation.onRedisError is allow: while Redis is unreachable, revoked tokens are NOT refused');
  }

  private watch(client: RedisClient, role: string): void {
    client.on('error', (err: unknown) => {
      const why = explainRedisError(err);
      // One log line per distinct problem, not one per reconnect attempt.
      if (why !== this.lastError) this.opts.logger.warn({ role, problem: why }, 'redis connection problem: revocation fails closed');
      this.lastError = why;
    });
    client.on('ready', () => this.noteState());
    client.on('close', () => this.noteState());
  }

  private noteState(): void {
    const up = this.connected();
    if (up === this.wasUp) return;
    this.wasUp = up;
    if (up) {
      this.lastError = undefined;
      this.opts.logger.info('redis revocation store is up');
    } else if (!this.closed) {
      this.opts.logger.warn(this.allowOnError ? 'redis revocation store is down: onRedisError allow, tokens are NOT checked' : 'redis revocation store is down: requests fail closed until it returns');
    }
    this.emit(up ? 'up' : 'down');
  }

  private async subscribe(): Promise<void> {
    try {
      await this.sub.subscribe(this.channel);
    } catch (err) {
      this.opts.logger.warn({ problem: explainRedisError(err) }, 'redis subscribe failed; retrying on the next reconnect');
      return;
    }
    // Anything published while we were not subscribed is lost: forget what we cached.
    this.jtis.clear();
    this.subjects.clear();
    this.sessions.clear();
    this.epoch++;
    this.subscribed = true;
    this.noteState();
  }

  private async beat(): Promise<void> {
    if (!this.subscribed) return;
    try {
      await this.sub.ping();
    } catch (err) {
      if (!this.subscribed || this.closed) return;
      this.opts.logger.warn({ problem: explainRedisError(err) }, 'redis pub/sub heartbeat failed: reconnecting');
      this.lost();
      this.sub.disconnect(true);
    }
  }

  private lost(): void {
    if (!this.subscribed) return;
    this.subscribed = false;
    this.epoch++;
    this.noteState();
  }

  private receive(message: string): void {
    const m = /^([jsl]) (.+) (\d+)$/.exec(message);
    if (!m) return;
    let id: unknown;
    try {
      id = JSON.parse(m[2]!);
    } catch {
      return;
    }
    if (typeof id !== 'string') return;
    const value = Number(m[3]);
    this.epoch++;
    this.opts.metrics.revocationInvalidations.inc();
    if (m[1] === 'j') this.jtis.set(id, true);
    else if (m[1] === 'l') this.sessions.set(id, true);
    else this.subjects.set(id, Math.max(value, this.subjects.get(id) ?? NONE));
    this.emit('invalidation', { kind: m[1] === 'j' ? 'jti' : m[1] === 'l' ? 'session' : 'sub', id, value } satisfies Invalidation);
  }

  /** Both connections up and the channel subscribed: answers are current. */
  connected(): boolean {
    return !this.closed && this.subscribed && isUp(this.cmd) && isUp(this.sub);
  }

  /** Resolves once both connections are up and the channel is subscribed. */
  whenConnected(): Promise<void> {
    if (this.connected()) return Promise.resolve();
    return new Promise((resolve) => this.once('up', () => resolve()));
  }

  ready(): boolean {
    return this.allowOnError ? !this.closed : this.connected();
  }

  private unavailable(cause?: unknown): false {
    this.opts.metrics.revocationUnavailable.labels(this.allowOnError ? 'allowed' : 'denied').inc();
    if (this.allowOnError) return false;
    throw new RevocationUnavailable(cause ? `redis: ${explainRedisError(cause)}` : 'redis is not connected');
  }

  isRevoked(claims: SessionClaims): boolean | Promise<boolean> {
    if (!this.connected()) return this.unavailable();
    const jti = claims.jti;
    const jtiKnown = jti === undefined ? false : this.jtis.get(jti);
    const notBefore = this.subjects.get(claims.sub);
    if (jtiKnown === true) {
      this.hits.inc();
      return true;
    }
    if (jtiKnown !== undefined && notBefore !== undefined) {
      this.hits.inc();
      return revokedBySubject(claims, notBefore === NONE ? undefined : notBefore);
    }
    this.misses.inc();
    return this.lookup(claims, jtiKnown === undefined ? jti : undefined, notBefore);
  }

  private async lookup(claims: SessionClaims, askJti: string | undefined, cachedNotBefore: number | undefined): Promise<boolean> {
    const epoch = this.epoch;
    let jtiRevoked: boolean;
    let notBefore: number;
    try {
      const [j, s] = await Promise.all([
        askJti === undefined ? Promise.resolve(0) : this.cmd.exists(this.jtiKey(askJti)),
        cachedNotBefore === undefined ? this.cmd.get(this.subKey(claims.sub)) : Promise.resolve(String(cachedNotBefore)),
      ]);
      jtiRevoked = j > 0;
      notBefore = s === null ? NONE : Number(s) || NONE;
    } catch (err) {
      return this.unavailable(err);
    }
    // An invalidation that arrived meanwhile may be newer than what we read: don't cache over it.
    if (epoch === this.epoch && this.subscribed) {
      if (askJti !== undefined) this.jtis.set(askJti, jtiRevoked);
      this.subjects.set(claims.sub, notBefore);
    }
    return jtiRevoked || revokedBySubject(claims, notBefore === NONE ? undefined : notBefore);
  }

  isSessionRevoked(hash: string): boolean | Promise<boolean> {
    if (!this.connected()) return this.unavailable();
    const known = this.sessions.get(hash);
    if (known !== undefined) {
      this.hits.inc();
      return known;
    }
    this.misses.inc();
    return this.lookupSession(hash);
  }

  private async lookupSession(hash: string): Promise<boolean> {
    const epoch = this.epoch;
    let revoked: boolean;
    try {
      revoked = (await this.cmd.exists(this.sessionKey(hash))) > 0;
    } catch (err) {
      return this.unavailable(err);
    }
    if (epoch === this.epoch && this.subscribed) this.sessions.set(hash, revoked);
    return revoked;
  }

  private sessionKey(hash: string): string {
    return `${this.prefix}revoked:session:${hash}`;
  }

  private jtiKey(jti: string): string {
    return `${this.prefix}revoked:jti:${jti}`;
  }

  private subKey(sub: string): string {
    return `${this.prefix}revoked:sub:${sub}`;
  }

  private async revoke(key: string, tag: 'j' | 's' | 'l', id: string, value: number, ttlSeconds: number): Promise<number> {
    if (!isUp(this.cmd)) throw new RevocationUnavailable('redis is not connected');
    try {
      const stored = await this.cmd.eval(REVOKE_LUA, 1, key, String(value), String(Math.max(1, ttlSeconds)), this.channel, `${tag} ${JSON.stringify(id)} `);
      return Number(stored);
    } catch (err) {
      throw new RevocationUnavailable(`redis: ${explainRedisError(err)}`);
    }
  }

  async revokeToken(jti: string, expiresAt: number): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    // A caller's early expiry must not free a token that can still be accepted (the Lua keeps
    // a later one already stored).
    const until = Math.max(Math.ceil(expiresAt), now + this.opts.subjectTtlSeconds);
    await this.revoke(this.jtiKey(jti), 'j', jti, until, until - now);
    // Our own subscription delivers it too; set it now so this replica never lags its own answer.
    this.epoch++;
    this.jtis.set(jti, true);
  }

  async revokeSubject(sub: string, at: number): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    const stored = await this.revoke(this.subKey(sub), 's', sub, Math.floor(at), Math.floor(at) + this.opts.subjectTtlSeconds - now);
    this.epoch++;
    this.subjects.set(sub, Math.max(stored, this.subjects.get(sub) ?? NONE));
  }

  async revokeSession(hash: string, until: number): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    const value = Math.ceil(until);
    await this.revoke(this.sessionKey(hash), 'l', hash, value, value - now);
    this.epoch++;
    this.sessions.set(hash, true);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.subscribed = false;
    clearInterval(this.heartbeat);
    // A reload may have handed the shared Metrics to a newer store: only remove our own probe.
    if (this.opts.metrics.redisProbe === this.probe) this.opts.metrics.redisProbe = undefined;
    // disconnect, not QUIT: a QUIT queued on a reconnecting client would wait for Redis.
    this.cmd.disconnect();
    this.sub.disconnect();
  }
}
