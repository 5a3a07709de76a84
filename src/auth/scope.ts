// Does a verified session grant this URI through this provider? One answer for both kinds
// of session (a Keyhole token, the app's word through introspection) and both routes.
import type { Reason } from '../reasons.ts';
import { ownsUri } from '../uri.ts';
import type { SessionClaims } from './claims.ts';

/** What the token layer knows of a provider: its name and whom it is open to. */
export interface Grantor {
  readonly name: string;
  readonly orgs: ReadonlySet<string> | undefined;
  readonly projects: ReadonlySet<string> | undefined;
}

/**
 * A verified session. `providers` is set for a session the app vouched for (introspection):
 * it may read only those providers, whole, and has no per-URI scope.
 */
export interface Session {
  readonly claims: SessionClaims;
  readonly providers?: ReadonlySet<string>;
}

export function authorize(session: Session, canonicalUri: string, provider: Grantor): Reason | undefined {
  if (session.providers) return authorizeIntrospected(session.providers, provider);
  const claims = session.claims;
  const granted = claims.uri === canonicalUri || claims.scope.some((prefix) => ownsUri(prefix, canonicalUri));
  if (!granted) return 'scope_denied';
  if (provider.orgs && (claims.org === undefined || !provider.orgs.has(claims.org))) return 'org_denied';
  if (provider.projects && (claims.project === undefined || !provider.projects.has(claims.project))) return 'org_denied';
  return undefined;
}

/**
 * An introspected session may read a provider only when YAML lists it for such sessions,
 * and never one restricted to orgs or projects: it has no org or project claim to show.
 */
function authorizeIntrospected(allowed: ReadonlySet<string>, provider: Grantor): Reason | undefined {
  if (!allowed.has(provider.name) || provider.orgs !== undefined || provider.projects !== undefined) return 'introspect_provider';
  return undefined;
}
