// Does a verified session grant this URI through this provider?
import type { Provider } from '../providers/types.js';
import { ownsUri } from '../providers/uri.js';
import type { Reason } from '../reasons.js';
import type { SessionClaims } from './claims.js';

export function authorize(claims: SessionClaims, canonicalUri: string, provider: Provider): Reason | undefined {
  const granted = claims.uri === canonicalUri || claims.scope.some((prefix) => ownsUri(prefix, canonicalUri));
  if (!granted) return 'scope_denied';
  if (provider.orgs && (claims.org === undefined || !provider.orgs.has(claims.org))) return 'org_denied';
  if (provider.projects && (claims.project === undefined || !provider.projects.has(claims.project))) return 'org_denied';
  return undefined;
}
