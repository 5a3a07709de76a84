// Limit counters shared by every replica and worker, in Redis (over the `redis:` section's
// TLS connection). Every batch of operations (store.ts) is one EVALSHA of one Lua script:
// atomic, never read-modify-write from here, and one round trip however many counters a
// sync writes. ioredis' defineCommand sends EVALSHA and falls back to EVAL after a Redis
// restart forgot the script.
//
// Redis unreachable (down, hung, refusing): `connected()` is false and `run` rejects with
// LimitsUnavailable at once (no offline queue); the limiter then fails closed (503
// limits_unavailable) or allows, as configured, and readiness and `keyhole_limits_store_up`
// say so. ioredis reconnects by itself (≤ 1 s backoff); a PING every second turns a Redis
// that hangs without closing the socket into "down" within the command timeout.
import type { Logger } from 'pino';
import type { RedisSectionConfig } from '../redis/schema.ts';
import { createRedisClient, explainRedisError, isUp, preflightRedis, type RedisClient } from '../redis/connect.ts';
import { subjectPattern } from './keys.ts';
import { gcraAvailable, LimitsUnavailable, type CounterReading, type LimitStore, type Op, type RateParams } from './store.ts';

/** The one script: KEYS[i] is operation i's counter, ARGV its operation and arguments in turn. */
export const LIMITS_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local a = 1
for i = 1, #KEYS do
  local key = KEYS[i]
  local op = ARGV[a]
  if op == 'add' then
    if ARGV[a + 1] == '0' then
      out[#out + 1] = tonumber(redis.call('GET', key) or '0') or 0
    else
      out[#out + 1] = redis.call('INCRBY', key, ARGV[a + 1])
      redis.call('PEXPIREAT', key, ARGV[a + 2])
    end
    a = a + 3
  elseif op == 'set' then
    local n = tonumber(ARGV[a + 2])
    local added = 0
    if n > 0 then
      added = redis.call('SADD', key, unpack(ARGV, a + 3, a + 2 + n))
      redis.call('PEXPIREAT', key, ARGV[a + 1])
    end
    out[#out + 1] = redis.call('SCARD', key)
    out[#out + 1] = added
    a = a + 3 + n
  elseif op == 'has' then
    out[#out + 1] = redis.call('SISMEMBER', key, ARGV[a + 1])
    a = a + 2
  elseif op == 'take' then
    local period = tonumber(ARGV[a + 1])
    local tau = period * tonumber(ARGV[a + 2])
    local want = tonumber(ARGV[a + 3])
    local tat = tonumber(redis.call('GET', key) or '0') or 0
    if tat < now then tat = now end
    local k = math.floor((now + tau - tat) / period)
    if k > want then k = want end
    if k >= 1 then
      tat = tat + k * period
      redis.call('SET', key, string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
      out[#out + 1] = k
    else
      out[#out + 1] = -math.max(1, math.ceil(tat + period - tau - now))
    end
    a = a + 4
  elseif op == 'give' then
    local tat = tonumber(redis.call('GET', key) or '0') or 0
    tat = tat - tonumber(ARGV[a + 1]) * tonumber(ARGV[a + 2])
    if tat > now then
      redis.call('SET', key, string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
    else
      redis.call('DEL', key)
    end
    out[#out + 1] = 0
    a = a + 3
  elseif op == 'slot' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    if redis.call('ZCARD', key) < tonumber(ARGV[a + 1]) then
      redis.call('ZADD', key, now + tonumber(ARGV[a + 2]), ARGV[a + 3])
      redis.call('PEXPIRE', key, ARGV[a + 2])
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
    a = a + 4
  elseif op == 'free' then
    local n = tonumber(ARGV[a + 1])
    if n > 0 then redis.call('ZREM', key, unpack(ARGV, a + 2, a + 1 + n)) end
    out[#out + 1] = 0
    a = a + 2 + n
  elseif op == 'touch' then
    local ttl = tonumber(ARGV[a + 1])
    local n = tonumber(ARGV[a + 2])
    for j = a + 3, a + 2 + n do redis.call('ZADD', key, now + ttl, ARGV[j]) end
    if n > 0 then redis.call('PEXPIRE', key, ttl) end
    out[#out + 1] = 0
    a = a + 3 + n
  else
    return redis.error_reply('keyhole limits: unknown operation ' .. tostring(op))
  end
end
return out
`;

/** Operations per EVALSHA: one call stays short however many counters a sync writes. */
const BATCH = 500;
/** Members per operation (Lua's unpack has a stack limit): longer lists are split. */
const MEMBERS = 1000;
const HEARTBEAT_MS = 1000;

type LimitsCommand = (numKeys: number, ...keysAndArgs: (string | number)[]) => Promise<unknown>;

/** The script's KEYS and ARGV for a batch. */
export function encodeOps(ops: readonly Op[]): (string | number)[] {
  const keys: string[] = [];
  const args: (string | number)[] = [];
  for (const o of ops) {
    keys.push(o.key);
    switch (o.op) {
      case 'add':
        args.push('add', o.delta, o.expireAt);
        break;
      case 'set':
        args.push('set', o.expireAt, o.members.length, ...o.members);
        break;
      case 'has':
        args.push('has', o.member);
        break;
      case 'take':
        args.push('take', o.periodMs, o.burst, o.want);
        break;
      case 'give':
        args.push('give', o.periodMs, o.n);
        break;
      case 'slot':
        args.push('slot', o.max, o.ttlMs, o.member);
        break;
      case 'free':
        args.push('free', o.members.length, ...o.members);
        break;
      case 'touch':
        args.push('touch', o.ttlMs, o.members.length, ...o.members);
        break;
    }
  }
  return [keys.length, ...keys, ...args];
}

/** Long member lists split into operations of at most MEMBERS (their results are merged back). */
function split(ops: readonly Op[]): { ops: Op[]; parts: number[] } {
  const out: Op[] = [];
  const parts: number[] = [];
  for (const o of ops) {
    if ((o.op === 'set' || o.op === 'free' || o.op === 'touch') && o.members.length > MEMBERS) {
      let n = 0;
      for (let i = 0; i < o.members.length; i += MEMBERS, n++) out.push({ ...o, members: o.members.slice(i, i + MEMBERS) });
      parts.push(n);
    } else {
      out.push(o);
      parts.push(1);
    }
  }
  return { ops: out, parts };
}

export interface RedisLimitStoreOptions {
  connection: RedisSectionConfig;
  logger: Logger;
}

export class RedisLimitStore implements LimitStore {
  private readonly client: RedisClient;
  private readonly command: LimitsCommand;
  private readonly prefix: string;
  private closed = false;
  /** a PING or a command timed out while the socket still looks up */
  private hung = false;
  private wasUp = false;
  /** read on every limited request: one field, brought up to date on every state change */
  private up = false;
  private lastProblem: string | undefined;
  private readonly heartbeat: NodeJS.Timeout;
  /** called when the store goes up or down (the limiter logs, counts, forgets views) */
  onState: ((up: boolean) => void) | undefined;

  /** Checks TLS and certificates first (RedisSetupError: refuse to start), then connects. */
  static async open(opts: RedisLimitStoreOptions): Promise<RedisLimitStore> {
    const { unreachable } = await preflightRedis(opts.connection, 'redis (limits)');
    if (unreachable.length > 0) opts.logger.warn({ unreachable }, 'redis is unreachable at start-up: limited requests fail closed until it answers');
    return new RedisLimitStore(opts);
  }

  private readonly opts: RedisLimitStoreOptions;
  constructor(opts: RedisLimitStoreOptions) {
    this.opts = opts;
    this.prefix = opts.connection.keyPrefix;
    this.client = createRedisClient(opts.connection, { name: 'keyhole-limits' });
    this.client.defineCommand('keyholeLimits', { lua: LIMITS_LUA });
    this.command = (this.client as unknown as { keyholeLimits: LimitsCommand }).keyholeLimits.bind(this.client);
    this.client.on('error', (err: unknown) => {
      const why = explainRedisError(err);
      // One log line per distinct problem, not one per reconnect attempt.
      if (why !== this.lastProblem) opts.logger.warn({ problem: why }, 'redis connection problem (limits)');
      this.lastProblem = why;
    });
    this.client.on('ready', () => {
      this.hung = false;
      this.noteState();
    });
    this.client.on('close', () => this.noteState());
    this.client.on('end', () => this.noteState());
    this.client.on('reconnecting', () => this.noteState());
    this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_MS).unref();
  }

  private noteState(): void {
    this.refresh();
    const up = this.up;
    if (up === this.wasUp) return;
    this.wasUp = up;
    if (up) this.lastProblem = undefined;
    if (!this.closed) this.onState?.(up);
  }

  private async beat(): Promise<void> {
    if (this.closed || !isUp(this.client)) return;
    try {
      await this.client.ping();
      if (this.hung) {
        this.hung = false;
        this.noteState();
      }
    } catch (err) {
      if (this.closed) return;
      this.opts.logger.warn({ problem: explainRedisError(err) }, 'redis heartbeat failed (limits): reconnecting');
      this.hung = true;
      this.noteState();
      this.client.disconnect(true);
    }
  }

  connected(): boolean {
    return this.up;
  }

  private refresh(): void {
    this.up = !this.closed && !this.hung && isUp(this.client);
  }

  /** Resolves once the connection is up (tests, start-up). */
  whenConnected(): Promise<void> {
    if (this.connected()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.connected()) {
          this.client.off('ready', check);
          resolve();
        }
      };
      this.client.on('ready', check);
    });
  }

  async run(ops: readonly Op[]): Promise<number[]> {
    if (ops.length === 0) return [];
    if (!this.connected()) throw new LimitsUnavailable('redis is not connected');
    const { ops: flat, parts } = split(ops);
    const batches: Promise<unknown>[] = [];
    for (let i = 0; i < flat.length; i += BATCH) batches.push(this.command(...(encodeOps(flat.slice(i, i + BATCH)) as [number, ...(string | number)[]])));
    let replies: unknown[];
    try {
      replies = await Promise.all(batches);
    } catch (err) {
      throw new LimitsUnavailable(`redis: ${explainRedisError(err)}`);
    }
    const results = replies.flatMap((r) => (r as (number | string)[]).map(Number));
    if (parts.every((p) => p === 1)) return results;
    return merge(ops, parts, results);
  }

  async readSubject(sub: string, rateOf: (key: string) => RateParams | undefined): Promise<CounterReading[]> {
    const keys = await this.scan(subjectPattern(this.prefix, sub));
    if (keys.length === 0) return [];
    const replies = await this.guard(async () => {
      const p = this.client.pipeline();
      for (const key of keys) {
        if (key.endsWith(':c')) p.zcard(key);
        else if (/:o:[^:]+:\d+$/.test(key)) p.scard(key);
        else p.get(key);
      }
      return (await p.exec()) ?? [];
    });
    // The replica's clock, for a rate's tokens now: a reading, not a decision.
    const now = Date.now();
    const out: CounterReading[] = [];
    keys.forEach((key, i) => {
      const [err, value] = replies[i] ?? [null, null];
      if (err || value === null) return;
      const rate = key.endsWith(':r') ? rateOf(key) : undefined;
      if (key.endsWith(':r')) out.push({ key, value: rate ? gcraAvailable(Number(value), now, rate.periodMs, rate.burst) : 0 });
      else out.push({ key, value: Number(value) });
    });
    return out;
  }

  async resetSubject(sub: string): Promise<number> {
    const keys = await this.scan(subjectPattern(this.prefix, sub));
    if (keys.length === 0) return 0;
    // Every limits key shares one slot ({limits}): one UNLINK per chunk works on a cluster too.
    let removed = 0;
    for (let i = 0; i < keys.length; i += MEMBERS) {
      const chunk = keys.slice(i, i + MEMBERS);
      removed += await this.guard(() => this.client.unlink(...chunk));
    }
    return removed;
  }

  /** Every key matching `pattern`, on every master of a cluster. */
  private async scan(pattern: string): Promise<string[]> {
    const nodes = 'nodes' in this.client && typeof this.client.nodes === 'function' ? this.client.nodes('master') : [this.client];
    const found = new Set<string>();
    await this.guard(async () => {
      for (const node of nodes) {
        let cursor = '0';
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          cursor = next;
          for (const k of keys) found.add(k);
        } while (cursor !== '0');
      }
    });
    return [...found];
  }

  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.connected()) throw new LimitsUnavailable('redis is not connected');
    try {
      return await fn();
    } catch (err) {
      throw new LimitsUnavailable(`redis: ${explainRedisError(err)}`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.up = false;
    clearInterval(this.heartbeat);
    // disconnect, not QUIT: a QUIT queued on a reconnecting client would wait for Redis.
    this.client.disconnect();
  }
}

/** Results of split operations back to one per operation (a set's size: the last part's; added: summed). */
function merge(ops: readonly Op[], parts: number[], results: number[]): number[] {
  const out: number[] = [];
  let r = 0;
  ops.forEach((o, i) => {
    const n = parts[i]!;
    if (o.op === 'set') {
      let added = 0;
      let size = 0;
      for (let j = 0; j < n; j++) {
        size = results[r++]!;
        added += results[r++]!;
      }
      out.push(size, added);
    } else {
      out.push(results[r]!);
      r += n;
    }
  });
  return out;
}
