// /v1/authorize: the decision of /v1/data without the bytes, for a data plane that pumps them
// (nginx auth_request, Caddy forward_auth, Envoy ext_authz HTTP). Not built yet: refused.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { refuse } from '../observe/refusal.ts';
import type { Runtime } from '../runtime.ts';

export function handleAuthorize(rt: Runtime, req: IncomingMessage, res: ServerResponse): Promise<void> {
  refuse(rt.logger, req, res, 'route_not_found', randomUUID(), { route: 'authorize' });
  return Promise.resolve();
}
