// The objects the real-world tests serve: random bytes written to a temp folder in 1 MiB
// steps and hashed as they are written (a 50 MiB object is never held in memory), then
// hard-linked into each server's folder (copied where a link cannot be made).
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, linkSync, mkdtempSync, openSync, readSync, closeSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

export interface StoredObject {
  name: string;
  path: string;
  size: number;
  sha256: string;
}

export type Objects = Record<string, StoredObject>;

const STEP = 1 << 20;

/** Writes one random object of each size into a fresh folder, removed by the test's teardown. */
export function writeObjects(t: Test, sizes: Record<string, number>): Objects {
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-objects-'));
  chmodSync(dir, 0o755); // servers that drop root (nginx, Apache, CGI as nobody) read them
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out: Objects = {};
  for (const [name, size] of Object.entries(sizes)) {
    const path = join(dir, name);
    const fd = openSync(path, 'w', 0o644);
    const hash = createHash('sha256');
    for (let left = size; left > 0; left -= STEP) {
      const part = randomBytes(Math.min(STEP, left));
      hash.update(part);
      writeSync(fd, part);
    }
    closeSync(fd);
    out[name] = { name, path, size, sha256: hash.digest('hex') };
  }
  return out;
}

/** Puts every object into `dir` under its name (a hard link: no second copy on disk). */
export function placeObjects(objects: Objects, dir: string): void {
  for (const o of Object.values(objects)) {
    try {
      linkSync(o.path, join(dir, o.name));
    } catch {
      copyFileSync(o.path, join(dir, o.name));
    }
  }
}

/** Bytes [start, end] of an object, read from its file. */
export function slice(o: StoredObject, start: number, end: number): Buffer {
  const buf = Buffer.alloc(end - start + 1);
  const fd = openSync(o.path, 'r');
  try {
    readSync(fd, buf, 0, buf.length, start);
  } finally {
    closeSync(fd);
  }
  return buf;
}
