// `azure` provider: azure-blob://container/blob and https://ACCOUNT.blob.core.windows.net/
// container/blob. Read-only service SAS (sp=r) from the account key, https-only unless the
// endpoint is loopback (Azurite), short expiry; the blob endpoint is configurable for
// Azurite and sovereign clouds.
import { z } from 'zod';
import { duration, filePath, secret, text, urlHolds, httpUrl } from '../config/blocks.ts';
import { createPool } from '../relay/pool.ts';
import { identityOf, providerBase } from './base.ts';
import { Allowlist, type ObjectRef } from './cloud/allowlist.ts';
import { serviceSas, userDelegationSas } from './cloud/azure-sas.ts';
import { DelegationKeySource, entraCredential, STORAGE_SCOPE } from './cloud/azure-identity.ts';
import { CloudProvider, type CloudSigner } from './cloud/cloud-provider.ts';
import { encodeKey } from './cloud/encode.ts';
import { CloudRefusal } from './cloud/errors.ts';
import { allowlist, checkCommon, cloudCommon } from './cloud/schema.ts';
import type { CredentialState, Provider } from './types.ts';
import type { DataUri } from '../uri.ts';

export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

const authorityHost = () =>
  text()
    .pipe(z.url({ protocol: /^https$/, message: 'must be an https:// URL' }))
    .optional();

/** An Entra ID identity for user delegation SAS: no account key anywhere. */
const entraIdentity = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('clientSecret'), tenantId: text(), clientId: text(), clientSecret: secret(), authorityHost: authorityHost() }),
  /** AKS workload identity: unset fields from AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE */
  z.strictObject({ kind: z.literal('workload'), tenantId: text().optional(), clientId: text().optional(), tokenFilePath: filePath().optional(), authorityHost: authorityHost() }),
  /** a system-assigned managed identity, or the user-assigned one with clientId */
  z.strictObject({ kind: z.literal('managed'), clientId: text().optional() }),
]);

export const azureProviderSchema = providerBase
  .extend({
    kind: z.literal('azure'),
    account: z.string().regex(/^[a-z0-9]{3,24}$/, 'must be a storage account name: 3-24 of a-z 0-9'),
    /** the account key (base64), by reference: service SAS. Or `identity`: user delegation SAS */
    accountKey: secret().optional(),
    identity: entraIdentity.optional(),
    /** user delegation keys (with `identity`): asked for `lifetime` (at most 7 d), fetched again `refreshBefore` their end */
    delegationKey: z
      .strictObject({ lifetime: duration(86_400_000), refreshBefore: duration(3_600_000), timeout: duration(10_000) })
      .prefault({})
      .refine((d) => d.lifetime <= 7 * 86_400_000, { message: 'a user delegation key lasts at most 7 days', path: ['lifetime'] })
      .refine((d) => d.refreshBefore < d.lifetime, { message: 'refreshBefore must be shorter than lifetime', path: ['refreshBefore'] }),
    /** blob endpoint; default https://ACCOUNT.blob.core.windows.net (Azurite: http://127.0.0.1:10000/devstoreaccount1) */
    endpoint: text()
      .pipe(httpUrl())
      .refine((u) => urlHolds(u, (url) => !url.search && !url.hash), 'no query or fragment')
      .optional(),
    /** SAS service version */
    version: z.string().regex(/^\d{4}-\d{2}-\d{2}$/).refine((v) => v >= '2020-12-06', 'must be 2020-12-06 or later').default('2022-11-02'),
    containers: allowlist('container'),
    ...cloudCommon,
  })
  .superRefine((cfg, ctx) => {
    checkCommon(cfg, ['azure-blob', 'https'], cfg.containers, 'container', ctx);
    if (cfg.match.startsWith('https://')) {
      const host = cfg.match.slice('https://'.length).split('/')[0];
      if (host !== `${cfg.account}.blob.core.windows.net`) {
        ctx.addIssue({ code: 'custom', path: ['match'], message: `an https:// prefix must name ${cfg.account}.blob.core.windows.net` });
      }
    }
    // urlHolds: a malformed endpoint has its own problem already (config/blocks.ts).
    if (cfg.endpoint && !urlHolds(cfg.endpoint, (u) => u.protocol === 'https:' || isLoopbackHost(u.hostname))) {
      ctx.addIssue({ code: 'custom', path: ['endpoint'], message: 'must be https:// unless the host is loopback (Azurite)' });
    }
    if ((cfg.accountKey === undefined) === (cfg.identity === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['accountKey'], message: 'give exactly one of accountKey (service SAS) and identity (user delegation SAS, no account key)' });
    }
    const key = cfg.accountKey?.reveal() ?? '';
    if (key !== '' && (!/^[A-Za-z0-9+/]+={0,2}$/.test(key) || Buffer.from(key, 'base64').length < 32)) {
      ctx.addIssue({ code: 'custom', path: ['accountKey'], message: `${cfg.accountKey?.source ?? 'accountKey'} is not a base64 account key` });
    }
  });
export type AzureProviderConfig = z.infer<typeof azureProviderSchema>;

export function createAzureProvider(cfg: AzureProviderConfig): Provider {
  const endpoint = (cfg.endpoint ?? `https://${cfg.account}.blob.core.windows.net`).replace(/\/+$/, '');
  const protocol = endpoint.startsWith('https:') ? 'https' : 'https,http';
  const accountKey = cfg.accountKey ? Buffer.from(cfg.accountKey.reveal(), 'base64') : undefined;
  const accountHost = `${cfg.account}.blob.core.windows.net`;
  const base = new URL(endpoint);
  // With `identity`: the connection that asks for user delegation keys.
  const keyPool = cfg.identity
    ? createPool(base.origin, { connections: 1, connectTimeoutMs: cfg.timeouts.connect, headersTimeoutMs: cfg.timeouts.headers, bodyTimeoutMs: cfg.timeouts.body, tls: cfg.tls })
    : undefined;
  const credentials: CredentialState | undefined = cfg.identity ? { up: undefined, fetches: { ok: 0, failed: 0 } } : undefined;
  const credential = cfg.identity ? entraCredential(cfg.identity) : undefined;
  const keys =
    credential && keyPool
      ? new DelegationKeySource({
          credential,
          origin: base.origin,
          pool: keyPool,
          basePath: base.pathname.replace(/\/+$/, ''),
          version: cfg.version,
          lifetimeMs: cfg.delegationKey.lifetime,
          refreshBeforeMs: cfg.delegationKey.refreshBefore,
          timeoutMs: cfg.delegationKey.timeout,
          fetches: credentials?.fetches,
        })
      : undefined;

  const signer: CloudSigner = {
    locate(uri: DataUri): ObjectRef {
      if (uri.scheme === 'azure-blob') return { bucket: uri.authority, key: uri.segments.join('/') };
      if (uri.authority !== accountHost) throw new CloudRefusal('bucket_not_allowed', `the URI names another storage account than ${cfg.account}`);
      return { bucket: uri.segments[0] ?? '', key: uri.segments.slice(1).join('/') };
    },
    async prepare() {
      if (!keys) return { identity: cfg.account };
      // A URL never outlives the key that signed it; a new key mints new URLs.
      const key = await keys.get();
      return { identity: `${cfg.account}\n${key.signedObjectId}\n${key.signedExpiry}`, notAfter: Date.parse(key.signedExpiry) };
    },
    async sign({ ref, signAt, ttlSeconds, overrides }) {
      // Read only, whatever the method: HEAD and GET are both reads under sp=r.
      const common = {
        account: cfg.account,
        container: ref.bucket,
        blob: ref.key,
        permissions: 'r',
        expiresOn: signAt + ttlSeconds * 1000,
        protocol,
        version: cfg.version,
        contentType: overrides.contentType,
        contentDisposition: overrides.contentDisposition,
      } as const;
      const { query } = keys ? userDelegationSas({ ...common, key: await keys.get() }) : serviceSas({ ...common, accountKey: accountKey! });
      return `${endpoint}/${ref.bucket}/${encodeKey(ref.key)}?${query}`;
    },
    close: async () => {
      await keyPool?.close();
    },
  };
  if (credential) {
    // Proxy mode with an identity reads with its OAuth token: nothing signed for Keyhole's own requests.
    signer.bearer = {
      async token() {
        const token = await credential.getToken(STORAGE_SCOPE, { abortSignal: AbortSignal.timeout(cfg.delegationKey.timeout) });
        if (!token) throw new Error('the Entra ID identity gave no token for Azure Storage');
        return { token: token.token, headers: { 'x-ms-version': cfg.version } };
      },
      url: (ref) => `${endpoint}/${ref.bucket}/${encodeKey(ref.key)}`,
    };
  }

  return new CloudProvider({ ...identityOf(cfg), common: cfg, allow: new Allowlist(cfg.containers), signer, credentials });
}
