// `keyhole presign`: the URL a provider would hand out for one URI at a given time, for
// ops and tests. Refusals come out as their reason code and rule, never a credential.
import type { Config } from '../config/schema.ts';
import { createProvider } from '../providers/kinds.ts';
import { ProviderRegistry } from '../providers/registry.ts';
import { parseDataUri } from '../uri.ts';

export async function presignUri(config: Config, raw: string, opts: { at?: Date | undefined; ttlSeconds?: number | undefined }): Promise<string> {
  const uri = parseDataUri(raw, config.server.maxUriLength);
  const registry = new ProviderRegistry(config.providers.map(createProvider));
  try {
    const resolved = registry.resolve(uri);
    if (!resolved) throw new Error(`no_provider: no configured provider owns ${uri.canonical}`);
    if (!resolved.provider.presign) throw new Error(`provider ${resolved.provider.name} (${resolved.provider.kind}) does not presign`);
    const signed = await resolved.provider.presign(uri, resolved.rest, { ...(opts.at ? { now: opts.at } : {}), ...(opts.ttlSeconds !== undefined ? { ttlSeconds: opts.ttlSeconds } : {}) });
    return signed.url;
  } catch (err) {
    const reason = (err as { reason?: unknown }).reason;
    throw new Error(typeof reason === 'string' ? `${reason}: ${(err as Error).message}` : (err as Error).message, { cause: err });
  } finally {
    await registry.close();
  }
}
