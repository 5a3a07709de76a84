// `local` provider: files under one root folder. Confinement is checked on the file
// actually opened (its /proc/self/fd link and its fstat), so a symlink swapped in after a
// path check still cannot lead outside the root.
//
// Links that would read a file past its provider's checks are refused (403
// local_link_refused) rather than followed to the provider that owns the file: that owner
// may need an org or project the token lacks, and serving it under this provider's name
// would put the wrong provider in the audit event. So:
// - a file belongs to the local provider with the deepest root holding its real path; one
//   that sits in another provider's root (a symlink into it, or that root nested in ours)
//   is refused, whatever the link looked like when it was made;
// - a regular file with more than one hard link is refused: its other names may be anywhere
//   on the file system, and no path check can see them.
import { constants, createReadStream, realpathSync } from 'node:fs';
import { open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { sep } from 'node:path';
import { pipeline } from 'node:stream';
import { z } from 'zod';
import { filePath } from '../config/blocks.ts';
import { dataResponseHeaders, writeDataHead, writeRangedHead } from '../http/data-head.ts';
import { notModified, parseRange, rangeStillValid, type Validators } from '../http/range.ts';
import { refuseData } from '../http/answer.ts';
import { identityOf, providerBase } from './base.ts';
import { contentTypeFor } from './content-type.ts';
import type { DataRequest } from '../http/data-request.ts';
import type { Provider } from './types.ts';

export const localProviderSchema = providerBase.extend({
  kind: z.literal('local'),
  /** folder served; nothing outside it can be read */
  root: filePath(),
});
export type LocalProviderConfig = z.infer<typeof localProviderSchema>;

/** A local provider: its real root, and the roots of every local provider beside it. */
export interface LocalProvider extends Provider {
  readonly kind: 'local';
  /** the real path of the configured root */
  readonly root: string;
  /** every local root of the configuration (this one included): the registry tells each provider once */
  shareRoots(roots: readonly string[]): void;
}

export function isLocalProvider(p: Provider): p is LocalProvider {
  return p.kind === 'local' && typeof (p as Partial<LocalProvider>).shareRoots === 'function';
}

const withSep = (dir: string) => (dir.endsWith(sep) ? dir : dir + sep);

/**
 * The root (of `roots`, each ending in `sep`) that owns `real`: the deepest one holding it,
 * or undefined when none does. Equal roots own a file together (the first one found).
 */
export function owningRoot(real: string, roots: readonly string[]): string | undefined {
  let owner: string | undefined;
  for (const r of roots) if (real.startsWith(r) && (owner === undefined || r.length > owner.length)) owner = r;
  return owner;
}

// O_NONBLOCK: opening a FIFO planted under the root must not hang the request.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;
const canCheckFd = process.platform === 'linux';

async function openedPath(fh: FileHandle, fallback: string): Promise<string> {
  return canCheckFd ? readlink(`/proc/self/fd/${fh.fd}`) : realpath(fallback);
}

export function createLocalProvider(cfg: LocalProviderConfig): LocalProvider {
  const root = realpathSync(cfg.root);
  const rootPrefix = withSep(root);
  /** every local root (with `sep`), ours included; only ours until the registry tells */
  let roots: readonly string[] = [rootPrefix];

  async function serve(req: DataRequest, res: ServerResponse): Promise<void> {
    const { outcome } = req;
    const notFound = () => {
      outcome.reason = 'not_found';
      refuseData(res, req, 'not_found');
    };
    const linkRefused = (detail: string) => {
      outcome.reason = 'local_link_refused';
      outcome.detail = detail;
      refuseData(res, req, 'local_link_refused');
    };
    // Segments were checked by the URI parser (no '.', '..', '/', '\', NUL).
    if (req.rest.length === 0) return notFound();
    const candidate = root + sep + req.rest.join(sep);
    let fh: FileHandle;
    try {
      fh = await open(candidate, OPEN_FLAGS);
    } catch {
      return notFound(); // ENOENT, EACCES, ENOTDIR …
    }
    let handedOff = false;
    try {
      // Both checks are on the file opened (its fd), not on a path that could change meanwhile.
      const real = await openedPath(fh, candidate);
      const owner = owningRoot(real, roots);
      if (owner === undefined) {
        outcome.detail = 'resolved outside the root';
        return notFound();
      }
      if (owner !== rootPrefix) return linkRefused("the file is in another local provider's root");
      const st = await fh.stat();
      if (!st.isFile()) return notFound();
      if (st.nlink > 1) return linkRefused('the file has more than one hard link');

      const v: Validators = { etag: `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`, lastModified: st.mtime };
      const headers = dataResponseHeaders(contentTypeFor(req.rest[req.rest.length - 1]!), {
        'accept-ranges': 'bytes',
        etag: v.etag,
        'last-modified': st.mtime.toUTCString(),
      });
      if (notModified(req.headers, v)) {
        delete headers['content-type'];
        writeDataHead(res, 304, req.head, headers);
        res.end();
        return;
      }
      let range = parseRange(req.headers.range, st.size);
      if (range.kind !== 'full' && !rangeStillValid(req.headers, v)) range = { kind: 'full' };
      const span = writeRangedHead(res, req, headers, range, st.size);
      if (span === undefined) return;
      const stream = createReadStream('', { fd: fh, start: span.start, end: span.end, highWaterMark: 64 * 1024 });
      handedOff = true;
      stream.on('data', (chunk: string | Buffer) => {
        outcome.bytes += chunk.length;
      });
      await new Promise<void>((resolve) => {
        pipeline(stream, res, (err) => {
          if (err && !res.destroyed) {
            outcome.reason = 'upstream_error';
            outcome.detail = err.message;
            res.destroy(err);
          }
          resolve();
        });
      });
    } finally {
      if (!handedOff) await fh.close();
    }
  }

  return {
    ...identityOf(cfg),
    root,
    shareRoots(all: readonly string[]): void {
      roots = [...new Set([rootPrefix, ...all.map(withSep)])];
    },
    serve,
    close: async () => {},
  };
}
