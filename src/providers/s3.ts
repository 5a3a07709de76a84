// `s3` provider: s3://bucket/key on AWS or any S3-compatible endpoint (MinIO, Ceph RGW),
// signed with SigV4 by @smithy/signature-v4 (the AWS SDK's own signer). presign mode
// redirects to a URL on `publicEndpoint` (or `endpoint`); proxy mode signs a URL on
// `endpoint` for Keyhole's own request and streams the answer.
import type { HttpRequest } from '@smithy/protocol-http';
import type { SignatureV4 } from '@smithy/signature-v4';
import { lazyRequire } from '../lazy.ts';
import { z } from 'zod';
import { duration, secret, text, urlHolds, httpUrl } from '../config/blocks.ts';
import { identityOf, providerBase } from './base.ts';
import { Allowlist, type ObjectRef } from './cloud/allowlist.ts';
import { AwsCredentialSource } from './cloud/aws-credentials.ts';
import { withTimeout } from './cloud/timeout.ts';
import { CloudProvider, type CloudSigner, type SignInput } from './cloud/cloud-provider.ts';
import { encodeKey, encodeRfc3986 } from './cloud/encode.ts';
import { Sha256 } from './cloud/sha256.ts';
import { allowlist, checkCommon, cloudCommon } from './cloud/schema.ts';
import type { CredentialState, Provider, UpstreamTarget } from './types.ts';
import type { DataUri } from '../uri.ts';

const endpointUrl = () =>
  text()
    .pipe(httpUrl())
    .refine((u) => urlHolds(u, (url) => !url.search && !url.hash), 'no query or fragment');

/** Fixed keys, each by reference. */
const staticKeys = z.strictObject({
  accessKeyId: text(),
  secretAccessKey: secret(),
  sessionToken: secret().optional(),
});

/** The AWS default chain: env, shared config/credentials, web identity (IRSA), ECS, IMDS. */
const chainSource = z.strictObject({
  source: z.literal('chain'),
  profile: z.string().min(1).optional(),
  /** refresh temporary credentials this long before they expire */
  refreshBefore: duration(300_000),
});

/**
 * A role assumed through STS AssumeRole, with the external ID its trust policy asks for,
 * from a base identity (the default chain, or fixed keys). The SDK's fromTemporaryCredentials
 * does the call; AwsCredentialSource refreshes before the session ends.
 */
const assumedRole = z.strictObject({
  roleArn: z
    .string()
    .regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/, 'must be an IAM role ARN like arn:aws:iam::123456789012:role/keyhole-reader'),
  /** the sts:ExternalId the role's trust policy requires (2 to 1224 characters) */
  externalId: text().pipe(z.string().regex(/^[\w+=,.@:/-]{2,1224}$/, 'an external ID is 2 to 1224 of A-Z a-z 0-9 + = , . @ : / - _')).optional(),
  sessionName: z.string().regex(/^[\w+=,.@-]{2,64}$/, '2 to 64 of A-Z a-z 0-9 + = , . @ - _').default('keyhole'),
  /** the session's lifetime asked of STS: 900 s to 43200 s (the role's maximum session duration caps it) */
  durationSeconds: z.number().int().min(900).max(43_200).default(3600),
  /** the identity that assumes the role: `chain` (default) or fixed keys */
  source: z.union([z.literal('chain'), staticKeys]).default('chain'),
  profile: z.string().min(1).optional(),
  /** STS endpoint (a VPC endpoint, a regional one); default: the SDK's for stsRegion */
  stsEndpoint: endpointUrl().optional(),
  /** default: the provider's region */
  stsRegion: z.string().regex(/^[a-z0-9-]{2,32}$/, 'must be a region name like us-east-1').optional(),
  refreshBefore: duration(300_000),
  /** the longest one STS answer may take (two attempts are made) */
  stsTimeout: duration(5_000),
});

const s3Credentials = z.union([staticKeys, chainSource, assumedRole]);
export type S3Credentials = z.infer<typeof s3Credentials>;

export const s3ProviderSchema = providerBase
  .extend({
    kind: z.literal('s3'),
    region: z.string().regex(/^[a-z0-9-]{2,32}$/, 'must be a region name like us-east-1').default('us-east-1'),
    /** where Keyhole reaches S3; default https://s3.REGION.amazonaws.com */
    endpoint: endpointUrl().optional(),
    /** host put into presigned URLs for browsers, when `endpoint` is internal */
    publicEndpoint: endpointUrl().optional(),
    /** path-style URLs (endpoint/bucket/key) instead of virtual-hosted (bucket.endpoint/key) */
    pathStyle: z.boolean().default(false),
    credentials: s3Credentials,
    buckets: allowlist('bucket'),
    ...cloudCommon,
  })
  .superRefine((cfg, ctx) => checkCommon(cfg, ['s3'], cfg.buckets, 'bucket', ctx));
export type S3ProviderConfig = z.infer<typeof s3ProviderSchema>;

const credentialProviders = lazyRequire<typeof import('@aws-sdk/credential-providers')>('@aws-sdk/credential-providers');
const protocolHttp = lazyRequire<typeof import('@smithy/protocol-http')>('@smithy/protocol-http');
const signatureV4 = lazyRequire<typeof import('@smithy/signature-v4')>('@smithy/signature-v4');

/** The SigV4 signer exactly as the s3 provider uses it (exported for the vector tests). */
export function s3Signer(credentials: SignatureV4['credentialProvider'] | AwsCredentialSource['identity'] | { accessKeyId: string; secretAccessKey: string; sessionToken?: string }, region: string, service = 's3'): SignatureV4 {
  // S3 signs the path as sent (no double encoding, no normalisation) and, for presigned
  // GETs, an UNSIGNED-PAYLOAD body hash.
  return new (signatureV4().SignatureV4)({ credentials, region, service, sha256: Sha256, uriEscapePath: false, applyChecksum: false });
}

/**
 * A presigned S3 URL carries UNSIGNED-PAYLOAD as its body hash. The header only feeds the
 * canonical request: it is neither signed nor hoisted into the query, which keeps URLs
 * byte-identical to the S3 documentation's example.
 */
export const UNSIGNED_PAYLOAD_HEADER = { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } as const;
export const UNSIGNED_PAYLOAD_OPTIONS = {
  unsignableHeaders: new Set(['x-amz-content-sha256']),
  unhoistableHeaders: new Set(['x-amz-content-sha256']),
};

/** A presigned request as a URL string: parameters sorted as signed, the signature last. */
export function presignedUrl(req: HttpRequest): string {
  const query = req.query as Record<string, string>;
  const parts = Object.keys(query)
    .filter((k) => k !== 'X-Amz-Signature')
    .sort()
    .map((k) => `${encodeRfc3986(k)}=${encodeRfc3986(query[k]!)}`);
  if (query['X-Amz-Signature'] !== undefined) parts.push(`X-Amz-Signature=${query['X-Amz-Signature']}`);
  const host = req.port ? `${req.hostname}:${req.port}` : req.hostname;
  return `${req.protocol}//${host}${req.path}${parts.length ? `?${parts.join('&')}` : ''}`;
}

type Keys = z.infer<typeof staticKeys>;
const fixed = (c: Keys) => async () => ({ accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey.reveal(), ...(c.sessionToken ? { sessionToken: c.sessionToken.reveal() } : {}) });

/** Where the s3 provider's credentials come from: fixed keys, the default chain, or a role. */
export function awsCredentialSource(c: S3Credentials, region: string, fetches?: CredentialState['fetches']): AwsCredentialSource {
  if ('roleArn' in c) {
    const providers = credentialProviders();
    const base = c.source === 'chain' ? providers.fromNodeProviderChain(c.profile ? { profile: c.profile } : {}) : fixed(c.source);
    const role = providers.fromTemporaryCredentials({
      params: { RoleArn: c.roleArn, RoleSessionName: c.sessionName, DurationSeconds: c.durationSeconds, ...(c.externalId ? { ExternalId: c.externalId } : {}) },
      masterCredentials: base,
      // A bounded call: a slow STS must fail a refresh, not hold every request that waits on it.
      clientConfig: { region: c.stsRegion ?? region, maxAttempts: 2, requestHandler: { connectionTimeout: 3000, requestTimeout: c.stsTimeout }, ...(c.stsEndpoint ? { endpoint: c.stsEndpoint } : {}) },
    });
    // Two attempts of stsTimeout each, and no more, whatever the SDK's handler does.
    return new AwsCredentialSource(() => withTimeout(role(), 2 * c.stsTimeout + 3000, 'STS AssumeRole'), c.refreshBefore, Date.now, fetches);
  }
  if ('source' in c) return new AwsCredentialSource(credentialProviders().fromNodeProviderChain(c.profile ? { profile: c.profile } : {}), c.refreshBefore, Date.now, fetches);
  return new AwsCredentialSource(fixed(c), 0);
}

export function createS3Provider(cfg: S3ProviderConfig): Provider {
  const endpoint = new URL(cfg.endpoint ?? `https://s3.${cfg.region}.amazonaws.com`);
  const publicEndpoint = cfg.publicEndpoint ? new URL(cfg.publicEndpoint) : endpoint;
  // Keys in the config are not fetched: only a role or the chain has a state to report.
  const credentials: CredentialState | undefined = 'accessKeyId' in cfg.credentials ? undefined : { up: undefined, fetches: { ok: 0, failed: 0 } };
  const source = awsCredentialSource(cfg.credentials, cfg.region, credentials?.fetches);
  const signerV4 = s3Signer(source.identity, cfg.region);

  const request = (base: URL, ref: ObjectRef, method: 'GET' | 'HEAD'): HttpRequest => {
    const basePath = base.pathname.replace(/\/+$/, '');
    const virtual = !cfg.pathStyle;
    const hostname = virtual ? `${ref.bucket}.${base.hostname}` : base.hostname;
    const path = `${basePath}${virtual ? '' : `/${ref.bucket}`}/${encodeKey(ref.key)}`;
    const host = base.port ? `${hostname}:${base.port}` : hostname;
    return new (protocolHttp().HttpRequest)({ method, protocol: base.protocol, hostname, ...(base.port ? { port: Number(base.port) } : {}), path, headers: { host, ...UNSIGNED_PAYLOAD_HEADER }, query: {} });
  };

  const signer: CloudSigner = {
    locate(uri: DataUri): ObjectRef {
      return { bucket: uri.authority, key: uri.segments.join('/') };
    },
    async prepare() {
      const creds = await source.get();
      // A new session mints new URLs even where it keeps the key id (the cache key holds this).
      const notAfter = creds.expiration?.getTime();
      return { identity: notAfter === undefined ? creds.accessKeyId : `${creds.accessKeyId}@${notAfter}`, notAfter };
    },
    async sign({ ref, method, audience, signAt, ttlSeconds, overrides }: SignInput): Promise<string> {
      const req = request(audience === 'public' ? publicEndpoint : endpoint, ref, method);
      const query = req.query as Record<string, string>;
      if (overrides.contentType) query['response-content-type'] = overrides.contentType;
      if (overrides.contentDisposition) query['response-content-disposition'] = overrides.contentDisposition;
      const signed = await signerV4.presign(req, { signingDate: new Date(signAt), expiresIn: ttlSeconds, ...UNSIGNED_PAYLOAD_OPTIONS });
      return presignedUrl(signed as HttpRequest);
    },
    // Authorizer mode: SigV4 in the header fields over host, x-amz-content-sha256
    // (UNSIGNED-PAYLOAD), x-amz-date and x-amz-security-token: what the data plane sends with
    // them. Range and the conditionals are not signed, so the client's pass as they are.
    async signHeaders(ref: ObjectRef, method: 'GET' | 'HEAD', at: Date): Promise<UpstreamTarget> {
      const req = request(endpoint, ref, method);
      const signed = (await signerV4.sign(req, { signingDate: at })) as HttpRequest;
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(signed.headers)) {
        const lower = name.toLowerCase();
        if (lower === 'authorization' || lower.startsWith('x-amz-')) headers[lower] = value;
      }
      const host = req.port ? `${req.hostname}:${req.port}` : req.hostname;
      return { url: `${req.protocol}//${host}${req.path}`, headers };
    },
  };

  return new CloudProvider({
    ...identityOf(cfg),
    common: cfg,
    allow: new Allowlist(cfg.buckets),
    signer,
    credentials,
  });
}
