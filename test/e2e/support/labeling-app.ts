// Starts the Label Studio-like app of test/fixtures/labeling-app/ under Debian's gunicorn,
// with its large JS bundle (several MiB of vendor code, then frontend.js) written for it,
// and reads back the request log the app keeps (one JSON line per request).
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { startGunicorn } from '../../helpers/real-servers.ts';

const FIXTURE = join(import.meta.dirname, '..', '..', 'fixtures', 'labeling-app');

export interface AppUser {
  id: number;
  password: string;
  /** ids of the projects the user is a member of */
  projects: string[];
}

export interface AppProject {
  /** the storage prefix of the project's task data, e.g. local://images/project-1/ */
  prefix: string;
  /** object names under the prefix, one task image each */
  images: string[];
}

export interface LabelingAppOptions {
  /** recipe 3b: the app mints Keyhole tokens and its page POSTs them to /v1/session */
  mint: boolean;
  users: Record<string, AppUser>;
  projects: Record<string, AppProject>;
  /** what the app shares with Keyhole's auth section to mint tokens */
  keyhole: { secret: string; issuer: string; audience: string; kid: string };
}

export interface AppRequest {
  method: string;
  path: string;
  /** the user the request's sessionid names, as the app sees it */
  user: number | null;
}

export interface LabelingApp {
  origin: string;
  /** the bundle as written: what the browser must receive */
  bundle: { bytes: number; sha256: string; vendorLength: number };
  requests(): AppRequest[];
  /** whoami calls that named `user` (Keyhole's introspection with that user's cookie) */
  whoamiCalls(user: number): number;
}

/** 6 MiB of vendor code: a string literal of random base64, so nothing compresses it away. */
const VENDOR_BYTES = 4.5 * 1024 * 1024;

export async function startLabelingApp(t: Test, opts: LabelingAppOptions): Promise<LabelingApp> {
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-labeling-app-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const vendor = randomBytes(VENDOR_BYTES).toString('base64');
  const bundle = Buffer.from(`/* vendor chunk */\nvar __vendor = "${vendor}";\n${readFileSync(join(FIXTURE, 'frontend.js'), 'utf8')}`);
  const bundlePath = join(dir, 'app-bundle.js');
  writeFileSync(bundlePath, bundle);
  const log = join(dir, 'requests.log');
  writeFileSync(log, '');
  const server = await startGunicorn(t, readFileSync(join(FIXTURE, 'app.py'), 'utf8'), {
    APP_SECRET: randomBytes(32).toString('hex'),
    KEYHOLE_SECRET: opts.keyhole.secret,
    KEYHOLE_ISSUER: opts.keyhole.issuer,
    KEYHOLE_AUDIENCE: opts.keyhole.audience,
    KEYHOLE_KID: opts.keyhole.kid,
    KEYHOLE_MINT: opts.mint ? '1' : '0',
    APP_USERS: JSON.stringify(opts.users),
    APP_PROJECTS: JSON.stringify(opts.projects),
    APP_BUNDLE: bundlePath,
    APP_LOG: log,
  });
  const requests = (): AppRequest[] =>
    readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as AppRequest);
  return {
    origin: server.origin,
    bundle: { bytes: bundle.length, sha256: createHash('sha256').update(bundle).digest('hex'), vendorLength: vendor.length },
    requests,
    whoamiCalls: (user) => requests().filter((r) => r.path === '/api/current-user/whoami' && r.user === user).length,
  };
}
