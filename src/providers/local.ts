// `local` provider: files under one root folder. Confinement is checked on the file
// actually opened (its /proc/self/fd link), so a symlink swapped in after a path check
// still cannot lead outside the root.
import { constants, createReadStream, realpathSync } from 'node:fs';
import { open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { sep } from 'node:path';
import { pipeline } from 'node:stream';
import { z } from 'zod';
import { filePath } from '../config/types.js';
import { dataResponseHeaders, writeDataHead } from '../relay/headers.js';
import { notModified, parseRange, rangeStillValid, type Validators } from '../relay/range.js';
import { refuseData } from '../server/respond.js';
import { providerBase } from './base.js';
import { contentTypeFor } from './content-type.js';
import type { DataRequest, Provider } from './types.js';

export const localProviderSchema = providerBase.extend({
  kind: z.literal('local'),
  /** folder served; nothing outside it can be read */
  root: filePath(),
});
export type LocalProviderConfig = z.infer<typeof localProviderSchema>;

// O_NONBLOCK: opening a FIFO planted under the root must not hang the request.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;
const canCheckFd = process.platform === 'linux';

async function openedPath(fh: FileHandle, fallback: string): Promise<string> {
  return canCheckFd ? readlink(`/proc/self/fd/${fh.fd}`) : realpath(fallback);
}

export function createLocalProvider(cfg: LocalProviderConfig): Provider {
  const root = realpathSync(cfg.root);
  const rootPrefix = root.endsWith(sep) ? root : root + sep;

  async function serve(req: DataRequest, res: ServerResponse): Promise<void> {
    const { outcome } = req;
    const notFound = () => {
      outcome.reason = 'not_found';
      refuseData(res, req, 404, 'not_found');
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
      const real = await openedPath(fh, candidate);
      if (!real.startsWith(rootPrefix)) {
        outcome.detail = 'resolved outside the root';
        return notFound();
      }
      const st = await fh.stat();
      if (!st.isFile()) return notFound();

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
      if (range.kind === 'unsatisfiable') {
        outcome.reason = 'range_not_satisfiable';
        writeDataHead(res, 416, req.head, { ...headers, 'content-range': `bytes */${st.size}`, 'content-length': 0 });
        res.end();
        return;
      }
      const start = range.kind === 'partial' ? range.start : 0;
      const end = range.kind === 'partial' ? range.end : st.size - 1;
      headers['content-length'] = st.size === 0 ? 0 : end - start + 1;
      if (range.kind === 'partial') headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
      writeDataHead(res, range.kind === 'partial' ? 206 : 200, req.head, headers);
      if (req.method === 'HEAD' || st.size === 0) {
        res.end();
        return;
      }
      const stream = createReadStream('', { fd: fh, start, end, highWaterMark: 64 * 1024 });
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
    name: cfg.name,
    kind: 'local',
    match: cfg.match,
    orgs: cfg.orgs,
    projects: cfg.projects,
    serve,
    close: async () => {},
  };
}
