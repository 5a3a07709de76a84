// Maps a canonical URI to the one provider that owns it: the longest matching prefix.
// A URI no provider owns is refused, so Keyhole is never an open proxy.
//
// It is also the one place where a URI must name an object before any provider sees it: a
// token's scope is checked on the canonical URI, so the URI and the object a provider reads
// must name the same thing. A folder URI (`…/proj/`) does not: providers name objects by
// segments, and the trailing '/' is lost there (`…/proj/` would read the object `proj`
// beside the folder the scope was given).
import { isLocalProvider } from './local.ts';
import type { Provider } from './types.ts';
import { ownsUri, UriError, type DataUri } from '../uri.ts';

export interface Resolved {
  provider: Provider;
  /** path segments below the provider's prefix */
  rest: readonly string[];
}

/**
 * Kinds whose object is `rest` joined under a base folder (http: baseUrl, local: root).
 * For them an empty `rest` names that base folder itself, never an object. The other kinds
 * name the object by every segment of the URI, so a prefix may name one exact object.
 */
const BASE_FOLDER_KINDS: ReadonlySet<string> = new Set(['http', 'local']);

export class ProviderRegistry {
  /** longest prefix first, with how many path segments the prefix holds */
  private readonly byLength: { provider: Provider; skip: number }[];

  readonly providers: readonly Provider[];
  constructor(providers: readonly Provider[]) {
    this.providers = providers;
    this.byLength = [...providers].sort((a, b) => b.match.length - a.match.length).map((provider) => ({ provider, skip: prefixSegments(provider.match) }));
    // A local provider serves no file that sits in another local provider's root (reached by
    // a symlink or a nested root): it needs to know every root of this configuration.
    const locals = providers.filter(isLocalProvider);
    const roots = locals.map((p) => p.root);
    for (const p of locals) p.shareRoots(roots);
  }

  /**
   * Parsed URIs are cached and immutable (uri.ts), so the answer for one is too: kept as long
   * as the parsed URI lives.
   */
  private readonly known = new WeakMap<DataUri, Resolved | null>();

  /**
   * The provider that owns `uri`, or undefined when none does. Throws UriError `uri_folder`
   * when the URI names a folder rather than an object (ends in '/', or names the base folder
   * of an http or local provider): no caller ever gets a provider for one.
   */
  resolve(uri: DataUri): Resolved | undefined {
    if (uri.canonical.endsWith('/')) throw new UriError('uri_folder', 'the URI ends in / and names a folder, not an object');
    let found = this.known.get(uri);
    if (found === undefined) {
      found = this.lookup(uri);
      this.known.set(uri, found);
    }
    if (found !== null && found.rest.length === 0 && BASE_FOLDER_KINDS.has(found.provider.kind)) {
      throw new UriError('uri_folder', "the URI names the provider's base folder, not an object");
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
