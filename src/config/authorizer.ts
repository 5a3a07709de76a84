// The `authorizer:` section: /v1/authorize, the decision of /v1/data for a data plane that
// pumps the bytes itself (nginx auth_request, Caddy forward_auth, Envoy ext_authz HTTP).
// Absent: the route answers 404 route_not_found, as if it did not exist. Its allow answers
// carry the upstream credential, so only the listed peers may ask (docs/authorizer.md).
import { isIP } from 'node:net';
import { z } from 'zod';

/** One address (10.0.0.7, ::1) or a CIDR block (10.0.0.0/8, fd00::/8). */
const peer = z.string().refine((v) => {
  const [ip, bits, extra] = v.split('/');
  if (extra !== undefined || !ip || isIP(ip) === 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (isIP(ip) === 4 ? 32 : 128);
}, 'must be an IP address or a CIDR block like 10.0.0.0/8');

export const authorizerSchema = z
  .strictObject({
    /**
     * the data planes that may ask /v1/authorize, by their address as Keyhole sees the
     * connection (IP or CIDR); anyone else is refused (403 authorizer_peer). Their
     * X-Forwarded-For (its last entry) names the client in audit events.
     */
    peers: z.array(peer).min(1, 'list the data plane addresses: only they may ask for decisions, which carry upstream credentials'),
  })
  .describe('authorizer mode: /v1/authorize answers the decision of /v1/data (with the upstream URL and credential) to a data plane (nginx auth_request, Caddy forward_auth, Envoy ext_authz) that pumps the bytes itself; absent: the route does not exist. See docs/authorizer.md');
export type AuthorizerConfig = z.infer<typeof authorizerSchema>;
