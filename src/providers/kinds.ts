// Every provider kind: its YAML schema and its constructor. A new kind adds one entry
// to `providerSchema` and one to `constructors`, nothing else.
import { z } from 'zod';
import { createHttpProvider, httpProviderSchema } from './http.ts';
import { createLocalProvider, localProviderSchema } from './local.ts';
import { azureProviderSchema, createAzureProvider } from './azure.ts';
import { createGcsProvider, gcsProviderSchema } from './gcs.ts';
import { createS3Provider, s3ProviderSchema } from './s3.ts';
import { createRedisProvider, redisProviderSchema } from './redis.ts';
import type { Provider } from './types.ts';

export const providerSchema = z.discriminatedUnion('kind', [httpProviderSchema, localProviderSchema, s3ProviderSchema, gcsProviderSchema, azureProviderSchema, redisProviderSchema]);
export type ProviderConfig = z.infer<typeof providerSchema>;

type Kind = ProviderConfig['kind'];

/** Each kind's constructor, under the `kind` its YAML block names (the type pairs them). */
const constructors: { [K in Kind]: (cfg: Extract<ProviderConfig, { kind: K }>) => Provider } = {
  http: createHttpProvider,
  local: createLocalProvider,
  s3: createS3Provider,
  gcs: createGcsProvider,
  azure: createAzureProvider,
  redis: createRedisProvider,
};

export function createProvider(cfg: ProviderConfig): Provider {
  // An index by cfg.kind loses the pairing the table's type holds: the cast restores it.
  return (constructors[cfg.kind] as (cfg: ProviderConfig) => Provider)(cfg);
}
