// Maps a canonical URI to the one provider that owns it: the longest matching prefix.
// A URI no provider owns is refused, so Keyhole is never an open proxy.
import type { Provider } from './types.js';
import { ownsUri, type DataUri } from './uri.js';

export interface Resolved {
  provider: Provider;
  /** path segments below the provider's prefix */
  rest: readonly string[];
}

export class ProviderRegistry {
  /** longest prefix first, with how many path segments the prefix holds */
  private readonly byLength: { provider: Provider; skip: number }[];

  constructor(readonly providers: readonly Provider[]) {
    this.byLength = [...providers].sort((a, b) => b.match.length - a.match.length).map((provider) => ({ provider, skip: prefixSegments(provider.match) }));
  }

  /**
   * Parsed URIs are cached and immutable (uri.ts), so the answer for one is too: kept as long
   * as the parsed URI lives.
   */
  private readonly known = new WeakMap<DataUri, Resolved | null>();

  resolve(uri: DataUri): Resolved | undefined {
    let found = this.known.get(uri);
    if (found === undefined) {
      found = this.lookup(uri);
      this.known.set(uri, found);
    }
    return found ?? undefined;
  }

  private lookup(uri: DataUri): Resolved | null {
    for (const { provider, skip } of this.byLength) {
      if (!ownsUri(provider.match, uri.canonical)) continue;
      return Object.freeze({ provider, rest: skip === 0 ? uri.segments : Object.freeze(uri.segments.slice(skip)) });
    }
    return null;
  }

  get(name: string): Provider | undefined {
    return this.providers.find((p) => p.name === name);
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.providers.map((p) => p.close()));
  }
}

/** How many path segments a canonical prefix holds: `s3://b/x/y/` → 2. */
function prefixSegments(prefix: string): number {
  const path = prefix.slice(prefix.indexOf('://') + 3);
  const slash = path.indexOf('/');
  if (slash === -1) return 0;
  return path.slice(slash + 1).split('/').filter((s) => s !== '').length;
}
