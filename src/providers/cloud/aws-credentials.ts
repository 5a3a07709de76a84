// AWS credentials for SigV4: fixed keys from the config, or the AWS default chain
// (environment, shared config, web identity / IRSA, container and instance roles).
// Temporary credentials are refreshed before they expire, never while a sign waits on
// an old promise: one refresh at a time, shared by every caller.
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';

export class AwsCredentialSource {
  private current: AwsCredentialIdentity | undefined;
  private pending: Promise<AwsCredentialIdentity> | undefined;

  private readonly provider: (opts?: { forceRefresh?: boolean }) => Promise<AwsCredentialIdentity>;
  private readonly refreshBeforeMs: number;
  private readonly clock: () => number;
  private readonly fetches?: { ok: number; failed: number };
  constructor(
    provider: (opts?: { forceRefresh?: boolean }) => Promise<AwsCredentialIdentity>,
    /** refresh temporary credentials this long before they expire (ms) */
    refreshBeforeMs: number,
    clock: () => number = Date.now,
    /** counts each fetch from the source by result (role sessions, the chain) */
    fetches?: { ok: number; failed: number },
  ) {
    this.provider = provider;
    this.refreshBeforeMs = refreshBeforeMs;
    this.clock = clock;
    this.fetches = fetches;
  }

  /** Usable credentials, refreshed first when they expire within the margin. */
  async get(): Promise<AwsCredentialIdentity> {
    const c = this.current;
    if (c && !this.stale(c)) return c;
    this.pending ??= this.provider(c ? { forceRefresh: true } : undefined)
      .then((fresh) => {
        if (!fresh.accessKeyId || !fresh.secretAccessKey) throw new Error('the credential source returned no access key');
        this.current = fresh;
        return fresh;
      })
      .then(
        (fresh) => {
          if (this.fetches) this.fetches.ok++;
          return fresh;
        },
        (err: unknown) => {
          if (this.fetches) this.fetches.failed++;
          throw err;
        },
      )
      .finally(() => {
        this.pending = undefined;
      });
    const fresh = await this.pending;
    if (fresh.expiration && fresh.expiration.getTime() <= this.clock()) throw new Error('the credential source returned expired credentials');
    return fresh;
  }

  private stale(c: AwsCredentialIdentity): boolean {
    return c.expiration !== undefined && c.expiration.getTime() - this.clock() < this.refreshBeforeMs;
  }

  /** The identity as a signer sees it (smithy calls this for every signature). */
  readonly identity: AwsCredentialIdentityProvider = () => this.get();
}
