// The app.methods examples of docs/integrate.md (the Label Studio recipe) and the README, read
// out of the docs themselves, in front of a real WSGI server: every route Label Studio's own
// pages and API use passes (the Account page's PATCH /api/users/<id>/ and avatar upload were
// refused with 405 once), and the rules still refuse what they are there to refuse.
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { parse, stringify } from 'yaml';
import { baseYaml, startKeyhole, type Running } from '../helpers/keyhole.ts';
import { startGunicorn } from '../helpers/real-servers.ts';

const ROOT = join(import.meta.dirname, '..', '..');

// Echoes the method and path the app was handed.
const ECHO_APP = `
import json
def application(environ, start_response):
    body = json.dumps({'method': environ['REQUEST_METHOD'], 'path': environ['PATH_INFO']}).encode()
    start_response('200 OK', [('Content-Type', 'application/json'), ('Content-Length', str(len(body)))])
    return [body]
`;

/**
 * Label Studio's routes and the verbs its pages and API call them with (label_studio/*\/urls.py,
 * users/api.py's UserAPI with its avatar action, users/templates/users/user_account.html, the
 * React app's ApiConfig.js).
 */
const LABEL_STUDIO_ROUTES: readonly [string, string][] = [
  // pages and their forms
  ['GET', '/'],
  ['GET', '/projects/'],
  ['GET', '/projects/1/data'],
  ['GET', '/projects/1/settings/'],
  ['GET', '/user/login/'],
  ['POST', '/user/login/'],
  ['POST', '/user/signup/'],
  ['GET', '/user/account/'],
  ['POST', '/user/account/'],
  ['POST', '/password-reset/'],
  ['GET', '/logout'],
  ['POST', '/api-auth/login/'],
  ['GET', '/data/upload/1/image.png'],
  ['GET', '/data/avatars/a.png'],
  ['GET', '/static/js/main.js'],
  ['GET', '/react-app/main.js'],
  ['GET', '/label-studio-frontend/main.js'],
  // the current user and the Account page
  ['GET', '/api/current-user/whoami'],
  ['GET', '/api/current-user/token'],
  ['POST', '/api/current-user/reset-token/'],
  ['GET', '/api/users/'],
  ['GET', '/api/users/1/'],
  ['PATCH', '/api/users/1/'],
  ['PATCH', '/api/users/1/?update-notifications=1'],
  ['PUT', '/api/users/1/'],
  ['POST', '/api/users/1/avatar/'],
  ['DELETE', '/api/users/1/avatar/'],
  // projects, import, tasks, annotations, data manager, storages, ML, webhooks
  ['GET', '/api/projects/'],
  ['POST', '/api/projects/'],
  ['PATCH', '/api/projects/1/'],
  ['PUT', '/api/projects/1/'],
  ['DELETE', '/api/projects/1/'],
  ['POST', '/api/projects/1/validate'],
  ['POST', '/api/projects/1/import'],
  ['POST', '/api/projects/1/summary/reset'],
  ['DELETE', '/api/projects/1/file-uploads'],
  ['DELETE', '/api/projects/1/tasks/'],
  ['PATCH', '/api/tasks/1/'],
  ['POST', '/api/tasks/1/annotations/'],
  ['PATCH', '/api/annotations/1/'],
  ['DELETE', '/api/annotations/1/'],
  ['PATCH', '/api/drafts/1/'],
  ['PATCH', '/api/dm/views/1/'],
  ['PUT', '/api/dm/views/1/'],
  ['DELETE', '/api/dm/views/reset'],
  ['POST', '/api/dm/actions?id=delete_tasks&project=1'],
  ['PATCH', '/api/storages/s3/1'],
  ['POST', '/api/storages/s3/1/sync'],
  ['PATCH', '/api/ml/1'],
  ['DELETE', '/api/ml/1'],
  ['PATCH', '/api/webhooks/1'],
  ['POST', '/api/invite/reset-token'],
];

/** The `app:` section of the YAML block in `file` that has `app.methods` (the first such block). */
function appSectionOf(file: string): Record<string, unknown> {
  const text = readFileSync(join(ROOT, file), 'utf8');
  for (const [, body] of text.matchAll(/```ya?ml\n([\s\S]*?)```/g)) {
    const doc = parse(body!) as { app?: Record<string, unknown> } | null;
    if (doc?.app?.methods) return doc.app;
  }
  throw new Error(`${file} has no YAML block with app.methods`);
}

async function keyholeFor(t: Test, file: string): Promise<Running> {
  const upstream = await startGunicorn(t, ECHO_APP);
  const app = { ...appSectionOf(file), upstream: upstream.origin };
  delete (app as { tls?: unknown }).tls; // the recipe's app TLS files are the reader's
  const providers = `providers:\n  - { name: samples, kind: local, match: "local://samples/", root: ${process.cwd()}/samples }\n`;
  const k = await startKeyhole(baseYaml(`${providers}${stringify({ app })}`));
  t.teardown(() => k.close());
  return k;
}

async function call(k: Running, method: string, path: string): Promise<{ status: number; body: string }> {
  const body = method === 'GET' || method === 'HEAD' || method === 'DELETE' ? undefined : '{}';
  const res = await request(k.base + path, { method, dispatcher: k.dispatcher, headers: body ? { 'content-type': 'application/json' } : {}, ...(body ? { body } : {}) });
  return { status: res.statusCode, body: await res.body.text() };
}

for (const file of ['docs/integrate.md', 'README.md']) {
  t.test(`${file}: the app.methods example lets every Label Studio route through`, async (t) => {
    const k = await keyholeFor(t, file);
    for (const [method, path] of LABEL_STUDIO_ROUTES) {
      const res = await call(k, method, path);
      t.equal(res.status, 200, `${method} ${path} reaches the app (${res.body.slice(0, 80)})`);
      if (res.status === 200) t.match(JSON.parse(res.body), { method, path: path.split('?')[0] });
    }
  });
}

t.test('docs/integrate.md: the example still refuses what its rules are for', async (t) => {
  const k = await keyholeFor(t, 'docs/integrate.md');
  for (const [method, path] of [
    ['PUT', '/static/js/main.js'],
    ['DELETE', '/react-app/main.js'],
    ['POST', '/admin/auth/user/1/change/'],
    ['GET', '/api/current-user/reset-token/'],
    ['DELETE', '/user/account/'],
    ['PATCH', '/projects/1/settings/'],
  ] as const) {
    t.equal((await call(k, method, path)).status, 405, `${method} ${path}: app_method_denied`);
  }
});
