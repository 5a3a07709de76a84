// `gcs` provider: gs://bucket/object, V4 signed URLs with a service-account key
// (GOOG4-RSA-SHA256) or an HMAC key (GOOG4-HMAC-SHA256), signed in-process.
import { createPrivateKey } from 'node:crypto';
import { z } from 'zod';
import { secret, text, urlHolds } from '../config/blocks.js';
import type { Secret } from '../config/secret.js';
import { identityOf, providerBase } from './base.js';
import { Allowlist } from './cloud/allowlist.js';
import { CloudProvider, type CloudSigner } from './cloud/cloud-provider.js';
import { signGcsUrl, type GcsKey } from './cloud/gcs-sign.js';
import { allowlist, checkCommon, cloudCommon } from './cloud/schema.js';
import type { Provider } from './types.js';

const gcsCredentials = z.union([
  z.strictObject({
    /** the service-account JSON key file, by reference: ${file:/run/secrets/sa.json} */
    serviceAccountKey: secret(),
  }),
  z.strictObject({
    /** an HMAC key (Cloud Storage interoperability): access id and secret */
    hmacAccessId: text(),
    hmacSecret: secret(),
  }),
]);

export const gcsProviderSchema = providerBase
  .extend({
    kind: z.literal('gcs'),
    /** https://storage.googleapis.com unless a sovereign/universe domain or a test upstream */
    endpoint: text()
      .pipe(z.url({ protocol: /^https?$/, message: 'must be an http:// or https:// URL' }))
      .refine((u) => urlHolds(u, (url) => ['', '/'].includes(url.pathname) && !url.search), 'an origin only, no path or query')
      .default('https://storage.googleapis.com'),
    /** path: endpoint/bucket/object; virtual: bucket.endpoint/object */
    urlStyle: z.enum(['path', 'virtual']).default('path'),
    credentials: gcsCredentials,
    buckets: allowlist('bucket'),
    ...cloudCommon,
  })
  .superRefine((cfg, ctx) => {
    checkCommon(cfg, ['gs'], cfg.buckets, 'bucket', ctx);
    const c = cfg.credentials;
    if ('serviceAccountKey' in c) {
      try {
        parseServiceAccount(c.serviceAccountKey);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['credentials', 'serviceAccountKey'], message: (err as Error).message });
      }
    }
  });
export type GcsProviderConfig = z.infer<typeof gcsProviderSchema>;

/** The signing key in a service-account JSON file; the error never quotes the file. */
export function parseServiceAccount(json: Secret): GcsKey {
  let parsed: { client_email?: unknown; private_key?: unknown };
  try {
    parsed = JSON.parse(json.reveal()) as typeof parsed;
  } catch {
    throw new Error(`${json.source} is not a JSON service-account key`);
  }
  if (typeof parsed.client_email !== 'string' || typeof parsed.private_key !== 'string') {
    throw new Error(`${json.source} has no client_email and private_key`);
  }
  try {
    return { type: 'rsa', clientEmail: parsed.client_email, privateKey: createPrivateKey(parsed.private_key) };
  } catch {
    throw new Error(`${json.source}: private_key is not a PEM private key`);
  }
}

export function createGcsProvider(cfg: GcsProviderConfig): Provider {
  const endpoint = new URL(cfg.endpoint);
  const c = cfg.credentials;
  const key: GcsKey = 'serviceAccountKey' in c ? parseServiceAccount(c.serviceAccountKey) : { type: 'hmac', accessId: c.hmacAccessId, secret: c.hmacSecret.reveal() };
  const identity = key.type === 'rsa' ? key.clientEmail : key.accessId;

  const signer: CloudSigner = {
    locate: (uri) => ({ bucket: uri.authority, key: uri.segments.join('/') }),
    prepare: async () => ({ identity }),
    async sign({ ref, method, signAt, ttlSeconds, overrides }) {
      const query: Record<string, string> = {};
      if (overrides.contentType) query['response-content-type'] = overrides.contentType;
      if (overrides.contentDisposition) query['response-content-disposition'] = overrides.contentDisposition;
      return signGcsUrl({
        key,
        method,
        bucket: ref.bucket,
        object: ref.key,
        protocol: endpoint.protocol,
        host: endpoint.host,
        style: cfg.urlStyle,
        signAt,
        expiresSeconds: ttlSeconds,
        query,
      }).url;
    },
  };

  return new CloudProvider({ ...identityOf(cfg), common: cfg, allow: new Allowlist(cfg.buckets), signer });
}
