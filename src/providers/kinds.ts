// Every provider kind: its YAML schema and its constructor. A new kind adds one entry
// to `providerSchema` and one case to `createProvider`, nothing else.
import { z } from 'zod';
import { createHttpProvider, httpProviderSchema } from './http.js';
import { createLocalProvider, localProviderSchema } from './local.js';
import { azureProviderSchema, createAzureProvider } from './azure.js';
import { createGcsProvider, gcsProviderSchema } from './gcs.js';
import { createS3Provider, s3ProviderSchema } from './s3.js';
import { createRedisProvider, redisProviderSchema } from './redis.js';
import type { Provider } from './types.js';

export const providerSchema = z.discriminatedUnion('kind', [httpProviderSchema, localProviderSchema, s3ProviderSchema, gcsProviderSchema, azureProviderSchema, redisProviderSchema]);
export type ProviderConfig = z.infer<typeof providerSchema>;

export function createProvider(cfg: ProviderConfig): Provider {
  switch (cfg.kind) {
    case 'http':
      return createHttpProvider(cfg);
    case 'local':
      return createLocalProvider(cfg);
    case 's3':
      return createS3Provider(cfg);
    case 'gcs':
      return createGcsProvider(cfg);
    case 'azure':
      return createAzureProvider(cfg);
    case 'redis':
      return createRedisProvider(cfg);
  }
}
