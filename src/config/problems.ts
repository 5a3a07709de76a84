// A configuration problem: where in the file (a path such as providers[1].auth.password)
// and what is wrong. Every check of the config speaks in these, so check-config, serve and
// a refused reload list them the same way.
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { MIN_HMAC_BYTES } from '../auth/keys.ts';
import type { KeyConfig } from '../auth/schema.ts';

export interface Problem {
  path: string;
  message: string;
}

export class ConfigError extends Error {
  readonly problems: Problem[];
  constructor(problems: Problem[]) {
    super(`invalid configuration:\n${problems.map(formatProblem).join('\n')}`);
    this.problems = problems;
  }
}

export function formatProblem(p: Problem): string {
  return p.path ? `${p.path}: ${p.message}` : p.message;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

/** The auth keys' own checks: HMAC secrets long enough, public key files that parse. */
export function checkAuthKeys(keys: readonly KeyConfig[]): Problem[] {
  const problems: Problem[] = [];
  keys.forEach((k, i) => {
    if ('secret' in k && Buffer.byteLength(k.secret.reveal()) < MIN_HMAC_BYTES) {
      problems.push({ path: `auth.keys[${i}].secret`, message: `HMAC secret must be at least ${MIN_HMAC_BYTES} bytes` });
    }
    if ('publicKey' in k) {
      try {
        createPublicKey(readFileSync(k.publicKey));
      } catch (err) {
        problems.push({ path: `auth.keys[${i}].publicKey`, message: (err as Error).message.split('\n')[0] ?? String(err) });
      }
    }
  });
  return problems;
}

