// GCS without a private key: V4 signed URLs whose signature the IAM Credentials API makes
// (signBlob) for the runtime's own identity — workload identity, the metadata server, or
// whatever Application Default Credentials find — through Google's google-auth-library, which
// caches and refreshes the access token. Each signBlob call is bounded; the minted-URL cache
// (cloud-provider.ts) keeps them to one per object and stable window.
// https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/signBlob
import type { GoogleAuth } from 'google-auth-library';
import { lazyRequire } from '../../lazy.ts';
import { fullUndici } from '../../relay/undici.ts';
import type { BlobSigner } from './gcs-sign.ts';
import { withTimeout } from './timeout.ts';

const googleAuth = lazyRequire<typeof import('google-auth-library')>('google-auth-library');

export interface IamSignerOptions {
  /** the account to sign as; default: the one Application Default Credentials name */
  serviceAccountEmail?: string | undefined;
  /** https://iamcredentials.googleapis.com unless a private endpoint (or a test stand-in) */
  iamEndpoint: string;
  /** the longest a token fetch plus a signBlob call may take */
  timeoutMs: number;
  /** counts each signBlob call (a token fetch with it) by result */
  fetches?: { ok: number; failed: number };
}

export class IamBlobSigner {
  private readonly auth: GoogleAuth;
  private email: Promise<string> | undefined;

  private readonly opts: IamSignerOptions;
  constructor(opts: IamSignerOptions) {
    this.opts = opts;
    this.auth = new (googleAuth().GoogleAuth)({ scopes: ['https://www.googleapis.com/auth/cloud-platform'] });
  }

  /** The service account URLs are signed as (asked of ADC once, unless configured). */
  clientEmail(): Promise<string> {
    this.email ??= this.opts.serviceAccountEmail
      ? Promise.resolve(this.opts.serviceAccountEmail)
      : this.auth.getCredentials().then((c) => {
          if (!c.client_email) throw new Error('Application Default Credentials name no service account: set serviceAccountEmail');
          return c.client_email;
        });
    // A failed lookup is asked again next time, not cached.
    this.email.catch(() => (this.email = undefined));
    return this.email;
  }

  /** An access token for IAM Credentials (google-auth-library caches and refreshes it). */
  async accessToken(): Promise<string> {
    const token = await withTimeout(this.auth.getAccessToken(), this.opts.timeoutMs, 'the access token');
    if (!token) throw new Error('Application Default Credentials gave no access token');
    return token;
  }

  /** A BlobSigner for one signature: the account, and signBlob by IAM Credentials. */
  async signer(): Promise<BlobSigner> {
    const clientEmail = await this.clientEmail();
    return { clientEmail, signBlob: (bytes) => this.signBlob(clientEmail, bytes) };
  }

  private async signBlob(email: string, bytes: Buffer): Promise<Buffer> {
    const fetches = this.opts.fetches;
    try {
      const signed = await this.callSignBlob(email, bytes);
      if (fetches) fetches.ok++;
      return signed;
    } catch (err) {
      if (fetches) fetches.failed++;
      throw err;
    }
  }

  private async callSignBlob(email: string, bytes: Buffer): Promise<Buffer> {
    const token = await this.accessToken();
    const url = `${this.opts.iamEndpoint.replace(/\/+$/, '')}/v1/projects/-/serviceAccounts/${encodeURIComponent(email)}:signBlob`;
    const res = await fullUndici().request(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ payload: bytes.toString('base64') }),
      signal: AbortSignal.timeout(this.opts.timeoutMs),
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) {
      let why = `status ${res.statusCode}`;
      try {
        const e = (JSON.parse(text) as { error?: { status?: string; message?: string } }).error;
        if (e?.status) why = `${e.status}${e.message ? `: ${e.message.slice(0, 200)}` : ''}`;
      } catch {
        // not JSON: the status says enough
      }
      throw new Error(`IAM Credentials signBlob refused: ${why}`);
    }
    let signed: unknown;
    try {
      signed = (JSON.parse(text) as { signedBlob?: unknown }).signedBlob;
    } catch {
      throw new Error('IAM Credentials signBlob answered something that is not JSON');
    }
    if (typeof signed !== 'string' || signed === '') throw new Error('IAM Credentials signBlob answered no signedBlob');
    return Buffer.from(signed, 'base64');
  }
}
