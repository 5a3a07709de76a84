// Reads a small JSON request body with a hard size limit (admin, session, presign).
import type { IncomingMessage } from 'node:http';
import { ReasonError } from '../reasons.ts';

export class BodyError extends ReasonError {}

export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) throw new BodyError('body_type', 'content-type must be application/json');
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new BodyError('body_too_large', 'body too large');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new BodyError('body_too_large', 'body too large');
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BodyError('bad_request', 'body is not valid JSON');
  }
}
