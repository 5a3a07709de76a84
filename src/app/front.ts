// The app proxy that belongs to one loaded config: built on first use, so a reload (a new
// config) gets a proxy for the new app section; the runtime's close() closes it.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Config } from '../config/schema.js';
import type { Runtime } from '../server/runtime.js';
import { closeIntrospector } from '../auth/introspect.js';
import { AppProxy, refuseSocket } from './proxy.js';
import { logoutHook } from './logout.js';
import { logRefusal } from '../server/respond.js';

const proxies = new WeakMap<Config, AppProxy>();

/** The runtime's app proxy, or undefined when no `app` section is configured. */
export function appProxyFor(rt: Runtime): AppProxy | undefined {
  const cfg = rt.config.app;
  if (!cfg) return undefined;
  let proxy = proxies.get(rt.config);
  if (!proxy) {
    proxy = new AppProxy(cfg, {
      sessionCookie: rt.config.auth.cookie.name,
      proto: rt.config.server.tls ? 'https' : 'http',
      publicHost: rt.config.server.publicUrl ? new URL(rt.config.server.publicUrl).host : undefined,
      logger: rt.logger.child({ component: 'app' }),
      logout: logoutHook(rt.config.auth.introspect, rt.revocation, rt.config.auth.cookie.name),
    });
    proxies.set(rt.config, proxy);
  }
  return proxy;
}

/** Closes what this module opened for a config: the app pool, open websockets, the introspector. */
export async function closeAppFront(config: Config): Promise<void> {
  const proxy = proxies.get(config);
  proxies.delete(config);
  await Promise.all([proxy?.close(), closeIntrospector(config.auth.introspect)]);
}

/**
 * Node's `upgrade` event on the data listener. Only websocket upgrades to app paths pass;
 * Keyhole's own routes, and any other Upgrade (h2c…), get a plain refusal.
 */
export function handleUpgrade(rt: Runtime, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const path = (req.url ?? '/').split('?')[0];
  const app = appProxyFor(rt);
  if (app && path !== '/v1/data' && path !== '/v1/session' && path !== '/v1/presign') return app.upgrade(req, socket, head);
  refuseUpgrade(rt, req, socket, app ? "no upgrade on Keyhole's own routes" : 'no app behind Keyhole');
}

/** 400 to an upgrade request, on the raw socket (no response object exists for it), logged. */
export function refuseUpgrade(rt: Runtime, req: IncomingMessage, socket: Duplex, why: string): void {
  socket.on('error', () => socket.destroy());
  const id = randomUUID();
  logRefusal(rt.logger, req, id, 400, 'bad_request', { route: 'router', fields: { upgrade: req.headers.upgrade, why } });
  refuseSocket(socket, 400, 'bad_request', id);
}
