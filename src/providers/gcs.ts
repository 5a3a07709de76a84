// `gcs` provider: gs://bucket/object, V4 signed URLs with a service-account key
// (GOOG4-RSA-SHA256) or an HMAC key (GOOG4-HMAC-SHA256), signed in-process; or with no key
// at all, signed by IAM Credentials signBlob for the runtime's own identity (source: adc).
import { createPrivateKey } from 'node:crypto';
import { z } from 'zod';
import { duration, secret, text, urlHolds, httpUrl } from '../config/blocks.ts';
import type { Secret } from '../config/secret.ts';
import { identityOf, providerBase } from './base.ts';
import { Allowlist } from './cloud/allowlist.ts';
import { CloudProvider, type CloudSigner } from './cloud/cloud-provider.ts';
import { signGcsUrl, signGcsUrlWith, type GcsKey } from './cloud/gcs-sign.ts';
import { IamBlobSigner } from './cloud/gcs-identity.ts';
import { allowlist, checkCommon, cloudCommon } from './cloud/schema.ts';
import { encodeKey } from './cloud/encode.ts';
import type { CredentialState, Provider } from './types.ts';

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
  z.strictObject({
    /**
     * no key: the runtime's identity (Application Default Credentials: workload identity, the
     * metadata server, GOOGLE_APPLICATION_CREDENTIALS) has IAM Credentials sign each URL
     */
    source: z.literal('adc'),
    /** the account to sign as (it needs roles/iam.serviceAccountTokenCreator on itself); default: the ADC identity's */
    serviceAccountEmail: z.string().regex(/^[^@\s]+@[^@\s]+$/, 'must be a service account email').optional(),
    iamEndpoint: text()
      .pipe(httpUrl())
      .default('https://iamcredentials.googleapis.com'),
    /** the longest a token fetch or a signBlob call may take */
    timeout: duration(10_000),
  }),
]);

export const gcsProviderSchema = providerBase
  .extend({
    kind: z.literal('gcs'),
    /** https://storage.googleapis.com unless a sovereign/universe domain or a test upstream */
    endpoint: text()
      .pipe(httpUrl())
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
  const credentials: CredentialState | undefined = 'source' in c ? { up: undefined, fetches: { ok: 0, failed: 0 } } : undefined;
  const iam = 'source' in c ? new IamBlobSigner({ serviceAccountEmail: c.serviceAccountEmail, iamEndpoint: c.iamEndpoint, timeoutMs: c.timeout, fetches: credentials?.fetches }) : undefined;
  const key: GcsKey | undefined = 'serviceAccountKey' in c ? parseServiceAccount(c.serviceAccountKey) : 'hmacAccessId' in c ? { type: 'hmac', accessId: c.hmacAccessId, secret: c.hmacSecret.reveal() } : undefined;
  const keyIdentity = key === undefined ? '' : key.type === 'rsa' ? key.clientEmail : key.accessId;

  const signer: CloudSigner = {
    locate: (uri) => ({ bucket: uri.authority, key: uri.segments.join('/') }),
    // Without a key: a token for IAM Credentials must be had before a URL is promised.
    async prepare() {
      if (!iam) return { identity: keyIdentity };
      await iam.accessToken();
      return { identity: await iam.clientEmail() };
    },
    async sign({ ref, method, signAt, ttlSeconds, overrides }) {
      const query: Record<string, string> = {};
      if (overrides.contentType) query['response-content-type'] = overrides.contentType;
      if (overrides.contentDisposition) query['response-content-disposition'] = overrides.contentDisposition;
      const input = { method, bucket: ref.bucket, object: ref.key, protocol: endpoint.protocol, host: endpoint.host, style: cfg.urlStyle, signAt, expiresSeconds: ttlSeconds, query };
      return iam ? (await signGcsUrlWith(input, await iam.signer())).url : signGcsUrl({ ...input, key: key! }).url;
    },
  };

  if (iam) {
    // Proxy mode without a key reads with the identity's OAuth token: no signBlob per object.
    signer.bearer = {
      token: async () => ({ token: await iam.accessToken() }),
      url: (ref) =>
        cfg.urlStyle === 'virtual' ? `${endpoint.protocol}//${ref.bucket}.${endpoint.host}/${encodeKey(ref.key)}` : `${endpoint.protocol}//${endpoint.host}/${ref.bucket}/${encodeKey(ref.key)}`,
    };
  }

  return new CloudProvider({ ...identityOf(cfg), common: cfg, allow: new Allowlist(cfg.buckets), signer, credentials });
}
