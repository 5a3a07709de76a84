// Websocket upgrades on the data listener: only to the labeling app's paths.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { refuseSocket } from '../http/answer.ts';
import { logRefusal } from '../observe/refusal.ts';
import { ownRoute } from './routes.ts';
import type { Runtime } from '../runtime.ts';

/**
 * Node's `upgrade` event on the data listener. Only websocket upgrades to app paths pass;
 * Keyhole's own routes, and any other Upgrade (h2c…), get a plain refusal.
 */
export function handleUpgrade(rt: Runtime, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const path = (req.url ?? '/').split('?')[0];
  const app = rt.app;
  if (app && ownRoute(path) === undefined) return app.upgrade(req, socket, head);
  refuseUpgrade(rt, req, socket, app ? "no upgrade on Keyhole's own routes" : 'no app behind Keyhole');
}

/** 400 to an upgrade request, on the raw socket (no response object exists for it), logged. */
export function refuseUpgrade(rt: Runtime, req: IncomingMessage, socket: Duplex, why: string): void {
  socket.on('error', () => socket.destroy());
  const id = randomUUID();
  logRefusal(rt.logger, req, id, 'bad_request', { route: 'router', fields: { upgrade: req.headers.upgrade, why } });
  refuseSocket(socket, 'bad_request', id);
}
