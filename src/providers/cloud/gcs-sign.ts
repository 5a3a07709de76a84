// Google Cloud Storage V4 signed URLs, written against the published algorithm and
// checked against the conformance vectors (test/providers/gcs.test.ts):
//   canonical request = METHOD \n path \n sorted query \n headers \n signed headers \n payload
//   string to sign    = ALGORITHM \n datetime \n date/auto/storage/goog4_request \n hex(sha256(canonical))
// GOOG4-RSA-SHA256 signs with a service-account key (RSASSA-PKCS1-v1_5, SHA-256);
// GOOG4-HMAC-SHA256 derives a key from an HMAC secret the way SigV4 does.
import { createHash, createHmac, sign as rsaSign, type KeyObject } from 'node:crypto';
import { canonicalQuery, encodeKey, encodeRfc3986 } from './encode.ts';
import { amzDate } from './window.ts';

export type GcsKey = { type: 'rsa'; clientEmail: string; privateKey: KeyObject } | { type: 'hmac'; accessId: string; secret: string };

/** Signs bytes as a service account without holding its key (IAM Credentials signBlob). */
export interface BlobSigner {
  clientEmail: string;
  /** RSASSA-PKCS1-v1_5 SHA-256 of `bytes` by the account's Google-managed key */
  signBlob(bytes: Buffer): Promise<Buffer>;
}

export interface GcsSignInput {
  key: GcsKey;
  method: string;
  bucket: string;
  /** the object name as stored ('' for a bucket-level URL) */
  object: string;
  /** https: or http: */
  protocol: string;
  /** host[:port] the URL names */
  host: string;
  /** path: host/bucket/object; virtual: bucket.host/object; bound: host (a bucket-bound name)/object */
  style: 'path' | 'virtual' | 'bound';
  /** ms epoch, whole seconds */
  signAt: number;
  expiresSeconds: number;
  headers?: Record<string, string>;
  query?: Record<string, string>;
}

export interface GcsSigned {
  url: string;
  canonicalRequest: string;
  stringToSign: string;
  signature: string;
}

const collapse = (v: string) => v.trim().replace(/[ \t]+/g, ' ');

interface Unsigned {
  /** the URL up to `&X-Goog-Signature=` */
  prefix: string;
  canonicalRequest: string;
  stringToSign: string;
  date: string;
}

/** The request to sign and the URL without its signature: the part every key type shares. */
function unsigned(input: Omit<GcsSignInput, 'key'>, algorithm: string, credentialId: string): Unsigned {
  const datetime = amzDate(input.signAt);
  const date = datetime.slice(0, 8);
  const scope = `${date}/auto/storage/goog4_request`;
  const hostname = input.style === 'virtual' ? `${input.bucket}.${input.host}` : input.host;
  const objectPath = input.object === '' ? '' : `/${encodeKey(input.object)}`;
  const path = input.style === 'path' ? `/${input.bucket}${objectPath}` : objectPath || '/';

  // The signed Host is the name without a port, as Google's own client libraries sign it.
  const headers = new Map<string, string>([['host', hostname.replace(/:\d+$/, '')]]);
  for (const [name, value] of Object.entries(input.headers ?? {})) headers.set(name.toLowerCase(), collapse(value));
  const names = [...headers.keys()].sort();
  const signedHeaders = names.join(';');
  const canonicalHeaders = names.map((n) => `${n}:${headers.get(n)}\n`).join('');

  const query: Record<string, string> = {
    ...input.query,
    'X-Goog-Algorithm': algorithm,
    'X-Goog-Credential': `${credentialId}/${scope}`,
    'X-Goog-Date': datetime,
    'X-Goog-Expires': String(input.expiresSeconds),
    'X-Goog-SignedHeaders': signedHeaders,
  };
  const queryString = canonicalQuery(query);
  const payload = headers.get('x-goog-content-sha256') ?? 'UNSIGNED-PAYLOAD';
  const canonicalRequest = [input.method, path, queryString, canonicalHeaders, signedHeaders, payload].join('\n');
  const stringToSign = [algorithm, datetime, scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');

  return { prefix: `${input.protocol}//${hostname}${path}?${queryString}`, canonicalRequest, stringToSign, date };
}

function signed(u: Unsigned, signature: string): GcsSigned {
  return { url: `${u.prefix}&X-Goog-Signature=${encodeRfc3986(signature)}`, canonicalRequest: u.canonicalRequest, stringToSign: u.stringToSign, signature };
}

export function signGcsUrl(input: GcsSignInput): GcsSigned {
  const { key } = input;
  if (key.type === 'rsa') {
    const u = unsigned(input, 'GOOG4-RSA-SHA256', key.clientEmail);
    return signed(u, rsaSign('sha256', Buffer.from(u.stringToSign), key.privateKey).toString('hex'));
  }
  const u = unsigned(input, 'GOOG4-HMAC-SHA256', key.accessId);
  let k: Buffer = createHmac('sha256', `GOOG4${key.secret}`).update(u.date).digest();
  for (const part of ['auto', 'storage', 'goog4_request']) k = createHmac('sha256', k).update(part).digest();
  return signed(u, createHmac('sha256', k).update(u.stringToSign).digest('hex'));
}

/** GOOG4-RSA-SHA256 with the signature made by IAM Credentials signBlob (no key here). */
export async function signGcsUrlWith(input: Omit<GcsSignInput, 'key'>, signer: BlobSigner): Promise<GcsSigned> {
  const u = unsigned(input, 'GOOG4-RSA-SHA256', signer.clientEmail);
  return signed(u, (await signer.signBlob(Buffer.from(u.stringToSign))).toString('hex'));
}
