// A Keyhole with one `http` provider (https://data.corp/ → `origin`) for the relay tests,
// and a client that reads a whole answer and says whether it ended cleanly or was cut.
import type { Test } from 'tap';
import { request } from 'undici';
import { auditFor, dataUrl, type Running } from '../helpers/keyhole.ts';
import { CORP, keyholeInFront } from '../helpers/upstream.ts';

export interface Fetched {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** the transfer was cut (connection reset or closed before the end of the body) */
  cut: boolean;
  audit: Record<string, unknown>;
}

export interface Pair {
  k: Running;
  token: string;
  /** `slow`: read one chunk every few milliseconds, so Keyhole's writes fill up and it pauses the upstream */
  fetch(path: string, opts?: { method?: 'GET' | 'HEAD'; headers?: Record<string, string>; slow?: boolean }): Promise<Fetched>;
}

/** `extra`: more provider YAML (auth, timeouts); `env`: what its `${env:…}` references read. */
export async function keyholeFor(t: Test, origin: string, extra = '', env: Record<string, string> = {}): Promise<Pair> {
  const { k, token } = await keyholeInFront(t, `${origin}/`, { extra: `timeouts: { connect: 5s, headers: 5s, body: 5s }\n${extra}`, env });
  return {
    k,
    token,
    async fetch(path, opts = {}) {
      // Bounded: an answer that never ends fails the test instead of hanging it.
      const res = await request(k.base + dataUrl(CORP + path), {
        method: opts.method ?? 'GET',
        headers: { authorization: `Bearer ${token}`, ...opts.headers },
        dispatcher: k.dispatcher,
        signal: AbortSignal.timeout(10_000),
      });
      const chunks: Buffer[] = [];
      let cut = false;
      try {
        for await (const chunk of res.body) {
          chunks.push(chunk as Buffer);
          if (opts.slow) await new Promise((r) => setTimeout(r, 2));
        }
      } catch (err) {
        if ((err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError') throw new Error(`${path}: the answer never ended`, { cause: err });
        cut = true;
      }
      const audit = await auditFor(k, res.headers['x-request-id'] as string, 5000);
      return { status: res.statusCode, headers: res.headers as Fetched['headers'], body: Buffer.concat(chunks), cut, audit };
    },
  };
}
