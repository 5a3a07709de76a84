// The TLS a client side of Keyhole speaks (to upstreams, the app's introspection endpoint,
// Redis): the files a config names, read into Node's connection options.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { ClientTlsConfig } from '../config/blocks.ts';

/** TLS 1.2 at least; the CA to pin, the client certificate for mTLS, the name to verify. */
export function clientTlsOptions(tls: ClientTlsConfig | undefined): ConnectionOptions {
  const out: ConnectionOptions = { minVersion: 'TLSv1.2' };
  if (!tls) return out;
  if (tls.ca) out.ca = readFileSync(tls.ca);
  if (tls.cert) out.cert = readFileSync(tls.cert);
  if (tls.key) out.key = readFileSync(tls.key);
  if (tls.servername) out.servername = tls.servername;
  out.rejectUnauthorized = !tls.insecureSkipVerify;
  return out;
}
