// Loads a CommonJS package on first use instead of at start-up. ioredis and the AWS SDK
// pieces each add 10–22 MiB of resident memory when imported: only a
// process configured to use them (a Redis store, an s3 provider, `keyhole certs`) pays.
import { createRequire } from 'node:module';

const requireFromHere = createRequire(import.meta.url);

export function lazyRequire<T>(name: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= requireFromHere(name) as T);
}
