// Azure Blob without the account key: an Entra ID identity (a client secret, workload
// identity, or a managed identity, through @azure/identity) gets an OAuth token for Storage,
// the token gets a user delegation key from the Blob service, and the key signs user
// delegation SAS (./azure-sas.ts). The key is cached for its lifetime and fetched again
// `refreshBefore` its end, one fetch at a time; nothing is signed with an ended key.
// https://learn.microsoft.com/rest/api/storageservices/get-user-delegation-key
import type { TokenCredential } from '@azure/identity';
import type { Pool } from 'undici';
import { lazyRequire } from '../../lazy.ts';
import { fullUndici } from '../../relay/undici.ts';
import type { Secret } from '../../config/secret.ts';
import { sasTime, type UserDelegationKey } from './azure-sas.ts';

const azureIdentity = lazyRequire<typeof import('@azure/identity')>('@azure/identity');

/** Who Keyhole is in Entra ID (the `identity` block of an azure provider). */
export type EntraIdentity =
  | { kind: 'clientSecret'; tenantId: string; clientId: string; clientSecret: Secret; authorityHost?: string | undefined }
  | { kind: 'workload'; tenantId?: string | undefined; clientId?: string | undefined; tokenFilePath?: string | undefined; authorityHost?: string | undefined }
  | { kind: 'managed'; clientId?: string | undefined };

export const STORAGE_SCOPE = 'https://storage.azure.com/.default';

/**
 * A configured authority host (a sovereign cloud, a private endpoint) is taken as given:
 * MSAL's instance discovery would ask login.microsoftonline.com whether to trust it.
 */
function authority(host: string | undefined): { authorityHost?: string; disableInstanceDiscovery?: boolean } {
  return host ? { authorityHost: host, disableInstanceDiscovery: true } : {};
}

export function entraCredential(id: EntraIdentity): TokenCredential {
  const lib = azureIdentity();
  switch (id.kind) {
    case 'clientSecret':
      return new lib.ClientSecretCredential(id.tenantId, id.clientId, id.clientSecret.reveal(), authority(id.authorityHost));
    case 'workload':
      // Unset fields come from AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE
      // (what the AKS workload identity webhook injects).
      return new lib.WorkloadIdentityCredential({
        ...(id.tenantId ? { tenantId: id.tenantId } : {}),
        ...(id.clientId ? { clientId: id.clientId } : {}),
        ...(id.tokenFilePath ? { tokenFilePath: id.tokenFilePath } : {}),
        ...authority(id.authorityHost),
      });
    case 'managed':
      return id.clientId ? new lib.ManagedIdentityCredential({ clientId: id.clientId }) : new lib.ManagedIdentityCredential();
  }
}

export interface DelegationKeyOptions {
  credential: TokenCredential;
  /** the Blob endpoint's origin and pool (its TLS material and timeouts) */
  origin: string;
  pool: Pool;
  /** the endpoint's path before the container (Azurite: /devstoreaccount1) */
  basePath: string;
  /** x-ms-version of the request */
  version: string;
  /** how long each key is asked for (at most 7 days) */
  lifetimeMs: number;
  refreshBeforeMs: number;
  /** the longest a fetch may take, token included */
  timeoutMs: number;
  clock?: () => number;
  /** counts each key fetch by result */
  fetches?: { ok: number; failed: number };
}

/** Reads one element of the service's XML answer (a fixed, flat shape). */
function element(xml: string, name: string): string {
  const m = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
  if (!m) throw new Error(`the user delegation key answer has no ${name}`);
  return m[1]!;
}

export class DelegationKeySource {
  private current: UserDelegationKey | undefined;
  private pending: Promise<UserDelegationKey> | undefined;
  private readonly clock: () => number;

  private readonly opts: DelegationKeyOptions;
  constructor(opts: DelegationKeyOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? Date.now;
  }

  /** A key usable for at least refreshBefore, fetched first when the cached one is not. */
  async get(): Promise<UserDelegationKey> {
    const c = this.current;
    if (c && Date.parse(c.signedExpiry) - this.clock() >= this.opts.refreshBeforeMs) return c;
    const fetches = this.opts.fetches;
    this.pending ??= this.fetchKey()
      .then(
        (key) => {
          if (fetches) fetches.ok++;
          return key;
        },
        (err: unknown) => {
          if (fetches) fetches.failed++;
          throw err;
        },
      )
      .finally(() => {
        this.pending = undefined;
      });
    return await this.pending;
  }

  private async fetchKey(): Promise<UserDelegationKey> {
    const { credential, pool, basePath, version, lifetimeMs, timeoutMs } = this.opts;
    const signal = AbortSignal.timeout(timeoutMs);
    const token = await credential.getToken(STORAGE_SCOPE, { abortSignal: signal });
    if (!token) throw new Error('the Entra ID identity gave no token for Azure Storage');
    // The key starts a little in the past: the service's clock may be behind ours.
    const now = this.clock();
    const body = `<?xml version="1.0" encoding="utf-8"?><KeyInfo><Start>${sasTime(now - 300_000)}</Start><Expiry>${sasTime(now + lifetimeMs)}</Expiry></KeyInfo>`;
    // undici's request() API lives in the package index, loaded here only (relay/undici.ts).
    const res = await fullUndici().request(new URL(`${basePath}/?restype=service&comp=userdelegationkey`, this.opts.origin), {
      dispatcher: pool,
      method: 'POST',
      headers: { authorization: `Bearer ${token.token}`, 'x-ms-version': version, 'content-type': 'application/xml', 'x-ms-date': new Date(now).toUTCString() },
      body,
      signal,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) {
      const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? `status ${res.statusCode}`;
      throw new Error(`the Blob service refused a user delegation key: ${code}`);
    }
    const key: UserDelegationKey = {
      signedObjectId: element(text, 'SignedOid'),
      signedTenantId: element(text, 'SignedTid'),
      signedStart: element(text, 'SignedStart'),
      signedExpiry: element(text, 'SignedExpiry'),
      signedService: element(text, 'SignedService'),
      signedVersion: element(text, 'SignedVersion'),
      value: element(text, 'Value'),
    };
    const ends = Date.parse(key.signedExpiry);
    if (!(ends > this.clock())) throw new Error('the Blob service answered a user delegation key that has already ended');
    this.current = key;
    return key;
  }
}
