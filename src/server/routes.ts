// Keyhole's own paths on the data listener. Every other path belongs to the labeling app
// (when one is configured): this table is the one place that decides which is which.
export const DATA_PATH = '/v1/data';
export const SESSION_PATH = '/v1/session';
export const PRESIGN_PATH = '/v1/presign';
/** nginx auth_request, Caddy forward_auth, Envoy ext_authz (HTTP): a decision, no bytes */
export const AUTHORIZE_PATH = '/v1/authorize';

export type OwnRoute = 'data' | 'session' | 'presign' | 'authorize';

const OWN: ReadonlyMap<string, OwnRoute> = new Map([
  [DATA_PATH, 'data'],
  [SESSION_PATH, 'session'],
  [PRESIGN_PATH, 'presign'],
  [AUTHORIZE_PATH, 'authorize'],
]);

/** The Keyhole route a path (without its query) names, or undefined: the app's. */
export function ownRoute(path: string | undefined): OwnRoute | undefined {
  if (path === undefined) return undefined;
  const own = OWN.get(path);
  if (own !== undefined) return own;
  // Envoy's ext_authz (HTTP) asks at its path_prefix followed by the original path.
  return path.startsWith(`${AUTHORIZE_PATH}/`) ? 'authorize' : undefined;
}
