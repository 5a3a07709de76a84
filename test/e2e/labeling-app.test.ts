/// <reference lib="dom" />
// Issue 12's end-to-end proof of docs/integrate.md section 7: a labeling app of our own
// that behaves like Label Studio where it matters (signed-cookie sessions, whoami, a logout
// path, a CSRF cookie read by script, task images at /v1/data, a large bundle served with
// Connection: close by gunicorn's sync worker: test/fixtures/labeling-app/), behind
// Keyhole, driven in real Chromium through both recipes:
// 3a, introspection: Keyhole asks the app's whoami with the browser's session cookie, and
//     refuses a session cookie replayed after logout, on every replica (shared TLS Redis);
// 3b, minted tokens: the page POSTs a per-project token to /v1/session; another project is
//     out of scope; revoking the user cuts the token and the introspected session alike.
// Each step is asserted twice: in the page (naturalWidth) and in Keyhole's audit events.
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Cookie, type Page } from 'playwright-core';
import { request } from 'undici';
import { ADMIN_TOKEN, baseYaml, dataUrl, startKeyhole, TEST_SECRET, type Running } from '../helpers/keyhole.ts';
import { png } from '../helpers/png.ts';
import { redisRevocationYaml, startRedis, type TestRedis } from '../helpers/redis.ts';
import { startS3rver, S3RVER_ENV, type RunningS3 } from '../fixtures/cloud/s3rver.ts';
import { chromiumPresent, CHROMIUM, chromiumArgs } from './support/chromium.ts';
import { startLabelingApp, type AppProject, type AppUser, type LabelingApp } from './support/labeling-app.ts';

const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'e2e');

interface Shown {
  uri: string;
  ok: boolean;
  w: number;
  h: number;
}
/** What the app's frontend (test/fixtures/labeling-app/frontend.js) puts on window. */
interface Labeling {
  ready: Promise<{ session?: number; images: Shown[] }>;
  bundle: Promise<{ ran: boolean; vendorLength: number; bytes: number; sha256: string }>;
  addImage(src: string): Promise<Shown>;
  keyholeSession(method: 'POST' | 'DELETE', token?: string): Promise<number>;
  submitAnnotation(task: number, result: string): Promise<{ status: number; body: Record<string, unknown> }>;
  csrf(): string;
}
declare global {
  interface Window {
    labeling: Labeling;
  }
}

type Audit = Record<string, unknown>;

if (chromiumPresent(t)) {
  const ANN = { email: 'ann@example.org', id: 7, password: 'ann-password-1' };
  const BEN = { email: 'ben@example.org', id: 8, password: 'ben-password-1' };
  const CID = { email: 'cid@example.org', id: 9, password: 'cid-password-1' };
  const USERS: Record<string, AppUser> = {
    [ANN.email]: { id: ANN.id, password: ANN.password, projects: ['1', '3'] },
    [BEN.email]: { id: BEN.id, password: BEN.password, projects: ['1'] },
    [CID.email]: { id: CID.id, password: CID.password, projects: ['1'] },
  };
  const names = (n: number) => Array.from({ length: n }, (_, i) => `task-${i}.png`);
  const PROJECTS: Record<string, AppProject> = {
    '1': { prefix: 'local://images/project-1/', images: names(4) },
    '2': { prefix: 'local://images/project-2/', images: names(2) },
    '3': { prefix: 's3://labeling-data/project-3/', images: names(3) },
  };
  /** Each task image has its own size, so a decoded size proves which bytes arrived. */
  const sizeOf = (project: string, i: number) => ({ w: 24 + 8 * Number(project) + i, h: 16 + i });
  const uriOf = (project: string, i: number) => `${PROJECTS[project]!.prefix}task-${i}.png`;
  const shownAll = (project: string) => PROJECTS[project]!.images.map((_, i) => ({ uri: uriOf(project, i), ok: true, ...sizeOf(project, i) }));
  const refusedAll = (project: string) => PROJECTS[project]!.images.map((_, i) => ({ uri: uriOf(project, i), ok: false, w: 0, h: 0 }));

  let imageDir: string;
  let privateDir: string;
  let s3: RunningS3;
  let redis: TestRedis;
  let app3a: LabelingApp;
  let app3b: LabelingApp;
  /** recipe 3a: two replicas sharing Redis, in front of the same app */
  let a: Running;
  let b: Running;
  /** recipe 3b */
  let c: Running;
  let browser: Browser;

  const providers = () => `providers:
  - { name: images, kind: local, match: "local://images/", root: ${imageDir} }
  - { name: private, kind: local, match: "local://private/", root: ${privateDir} }
${s3.providerItem({ name: 'images-s3', bucket: 'labeling-data', prefixes: ['project-3/'] })}`;
  /** docs/integrate.md 3a's block, for this app; `private` is left out on purpose. */
  const introspect = (app: LabelingApp) => `auth:
  introspect:
    enabled: true
    url: ${app.origin}/api/current-user/whoami
    forward: [cookie]
    cacheTtl: 60s
    providers: [images, images-s3]
    subjectField: id
    logout:
      paths: [/user/logout]
      sessionCookie: sessionid
      remember: 14d                  # Django's SESSION_COOKIE_AGE
`;
  const front = (app: LabelingApp) => `app:
  upstream: ${app.origin}
  cookies: { scriptReadable: [csrftoken] }
`;

  t.before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    imageDir = mkdtempSync(join(tmpdir(), 'keyhole-e2e-images-'));
    privateDir = mkdtempSync(join(tmpdir(), 'keyhole-e2e-private-'));
    writeFileSync(join(privateDir, 'secret.png'), png(30, 30, 9));
    s3 = await startS3rver(['labeling-data']);
    for (const [project, spec] of Object.entries(PROJECTS)) {
      for (const [i, name] of spec.images.entries()) {
        const { w, h } = sizeOf(project, i);
        if (spec.prefix.startsWith('s3://')) await s3.put('labeling-data', `project-${project}/${name}`, png(w, h, i), 'image/png');
        else {
          mkdirSync(join(imageDir, `project-${project}`), { recursive: true });
          writeFileSync(join(imageDir, `project-${project}`, name), png(w, h, i));
        }
      }
    }
    redis = await startRedis();
    const keyhole = { secret: TEST_SECRET, issuer: 'test-issuer', audience: 'keyhole', kid: 'k1' };
    [app3a, app3b] = await Promise.all([
      startLabelingApp(t, { mint: false, users: USERS, projects: PROJECTS, keyhole }),
      startLabelingApp(t, { mint: true, users: USERS, projects: PROJECTS, keyhole }),
    ]);
    const env = S3RVER_ENV;
    const replica = () =>
      startKeyhole(
        baseYaml(`${redisRevocationYaml(redis, { redis: 'commandTimeout: 3s' })}${providers()}${front(app3a)}`).replace('auth:\n', introspect(app3a)),
        { env },
      );
    [a, b] = [await replica(), await replica()];
    c = await startKeyhole(baseYaml(`${providers()}${front(app3b)}`).replace('auth:\n', introspect(app3b)), { env });

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: chromiumArgs(),
    });
  });

  t.teardown(async () => {
    await browser?.close();
    await Promise.all([a?.close(), b?.close(), c?.close()]);
    await redis?.stop();
    await s3?.close();
    for (const dir of [imageDir, privateDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A fresh browser profile: cookies of one flow never leak into another. */
  const newContext = async (t: Test): Promise<BrowserContext> => {
    const context = await browser.newContext();
    t.teardown(() => context.close());
    return context;
  };

  /** Opens a project page, is sent to the app's sign-in form, fills it in and lands back. */
  const signIn = async (t: Test, page: Page, base: string, user: { email: string; password: string }, project = '1') => {
    await page.goto(`${base}/projects/${project}/`);
    t.equal(new URL(page.url()).pathname, '/user/login', 'no session: the app sends the browser to its sign-in form');
    await page.fill('input[name=email]', user.email);
    await page.fill('input[name=password]', user.password);
    await Promise.all([page.waitForURL(`${base}/projects/${project}/`), page.click('button[type=submit]')]);
    t.equal(await page.locator('#who').textContent(), `Signed in as ${user.email}`, 'signed in through the form, via Keyhole');
  };

  /** The grid as the page shows it: every <img> with its decoded width. */
  const grid = (page: Page) =>
    page.$$eval('#grid img', (imgs) => (imgs as HTMLImageElement[]).map((img) => ({ uri: img.dataset.uri ?? '', ok: img.naturalWidth > 0, w: img.naturalWidth, h: img.naturalHeight })));

  /** Audit events written since `from` that `want` picks, once there are `count` of them. */
  const auditsSince = async (k: Running, from: number, want: (a: Audit) => boolean, count: number): Promise<Audit[]> => {
    const until = Date.now() + 5000;
    for (;;) {
      const hits = k.audits().slice(from).filter(want);
      if (hits.length >= count || Date.now() > until) return hits;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const forUris = (uris: string[]) => (a: Audit) => uris.includes(String(a.uri));
  const summary = (events: Audit[]) =>
    events.map((e) => ({ sub: e.sub, uri: e.uri, decision: e.decision, reason: e.reason, status: e.status })).sort((x, y) => String(x.uri).localeCompare(String(y.uri)));
  const expected = (project: string, sub: string | undefined, decision: string, reason: string, status: number) =>
    PROJECTS[project]!.images.map((_, i) => ({ sub, uri: uriOf(project, i), decision, reason, status })).sort((x, y) => x.uri.localeCompare(y.uri));

  const revoke = async (k: Running, body: object) => {
    const res = await request(`${k.admin}/admin/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    await res.body.dump();
    return res.statusCode;
  };

  t.test('the app under test: gunicorn closes the connection after its large bundle', async (t) => {
    // The premise of the bundle checks below, measured at the app itself.
    const head = await new Promise<{ status: number; connection: string | undefined; length: number }>((resolve, reject) => {
      httpGet(`${app3a.origin}/static/app-bundle.js`, { agent: false }, (res) => {
        let length = 0;
        res.on('data', (chunk: Buffer) => (length += chunk.length));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, length }));
      }).on('error', reject);
    });
    t.same(head, { status: 200, connection: 'close', length: app3a.bundle.bytes }, `the bundle (${app3a.bundle.bytes} bytes) comes with Connection: close`);
    t.ok(app3a.bundle.bytes > 5 * 1024 * 1024, 'and is several MiB');
  });

  t.test('recipe 3a: introspection, logout, and a session cookie replayed after logout', async (t) => {
    const context = await newContext(t);
    const page = await context.newPage();
    const bundles: Promise<Buffer>[] = [];
    page.on('response', (r) => {
      if (new URL(r.url()).pathname === '/static/app-bundle.js') bundles.push(r.body());
    });

    const loginAudits = a.audits().length;
    await signIn(t, page, a.base, ANN);
    const cookies = await context.cookies(a.base);
    const csrftoken = cookies.find((x) => x.name === 'csrftoken');
    const sessionid = cookies.find((x) => x.name === 'sessionid');
    t.ok(csrftoken && !csrftoken.httpOnly && csrftoken.secure, 'csrftoken stays readable by script (app.cookies.scriptReadable), and gains Secure');
    t.ok(sessionid && sessionid.httpOnly && sessionid.secure && sessionid.sameSite === 'Lax', 'sessionid is HttpOnly, Secure, SameSite=Lax');

    // The task images render: the browser's sessionid went with each <img>, Keyhole asked whoami.
    const state = await page.evaluate(() => window.labeling.ready);
    t.same(state.images, shownAll('1'), 'every task image of project 1 decoded at its own size');
    t.same(await grid(page), shownAll('1'), 'the page shows them (naturalWidth > 0)');
    const allowed = await auditsSince(a, loginAudits, forUris(shownAll('1').map((x) => x.uri)), 4);
    t.same(summary(allowed), expected('1', String(ANN.id), 'allow', 'ok', 200), "audited as allowed, with the app's user id as subject");

    // The bundle arrived whole through Keyhole: its script ran, and it hashed itself.
    const bundle = await page.evaluate(() => window.labeling.bundle);
    t.same(bundle, { ran: true, ...app3a.bundle }, `the bundle's script ran and read back ${bundle.bytes} bytes with the right SHA-256`);
    const received = await Promise.all(bundles);
    t.ok(received.length >= 1, 'the browser fetched the bundle');
    for (const body of received) t.equal(createHash('sha256').update(body).digest('hex'), app3a.bundle.sha256, 'each copy the browser received is the whole bundle');

    // A POST with the CSRF header (read from the csrftoken cookie by script) goes through.
    t.same(await page.evaluate(() => window.labeling.submitAnnotation(5, 'cat')), { status: 201, body: { task: 5, by: ANN.id, result: 'cat' } }, 'POST with X-CSRFToken through the front: 201');
    const forged = await page.evaluate(async () => (await fetch('/api/tasks/5/annotations', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"result":"dog"}' })).status);
    t.equal(forged, 403, 'and without it the app refuses (its CSRF check is live)');

    // Project 3 lives in S3 (s3rver): the same session reads it, whoami is not asked again.
    await page.goto(`${a.base}/projects/3/`);
    t.same((await page.evaluate(() => window.labeling.ready)).images, shownAll('3'), 'project 3 (s3 provider) renders too');
    t.same(await grid(page), shownAll('3'), 'the page shows them');
    t.equal(app3a.whoamiCalls(ANN.id), 1, 'whoami asked once for all the images of both pages (cacheTtl 60s)');

    // Scope: an introspected session reads only auth.introspect.providers.
    const beforeScope = a.audits().length;
    t.same(await page.evaluate((src) => window.labeling.addImage(src), dataUrl('local://private/secret.png')), { uri: dataUrl('local://private/secret.png'), ok: false, w: 0, h: 0 }, 'an image of a provider not listed for introspection does not render');
    const [outOfScope] = await auditsSince(a, beforeScope, forUris(['local://private/secret.png']), 1);
    t.hasStrict(outOfScope, { sub: String(ANN.id), decision: 'deny', reason: 'introspect_provider', status: 403 }, 'audited as introspect_provider');

    // Logout through the app's link: Keyhole sees it pass, the app clears the cookie.
    await page.goto(`${a.base}/projects/1/`);
    await page.evaluate(() => window.labeling.ready);
    const saved = (await context.cookies(a.base)).find((x) => x.name === 'sessionid') as Cookie;
    await Promise.all([page.waitForURL(`${a.base}/user/login`), page.click('#logout')]);
    t.notOk((await context.cookies(a.base)).some((x) => x.name === 'sessionid'), 'the app cleared sessionid on logout');
    await page.screenshot({ path: join(ARTIFACTS, 'labeling-3a-logged-out.png') });

    // The weakness: the app itself still takes the saved copy (stateless signed cookie).
    const direct = await request(`${app3a.origin}/api/current-user/whoami`, { headers: { cookie: `sessionid=${saved.value}` } });
    t.same({ status: direct.statusCode, body: await direct.body.json() }, { status: 200, body: { id: ANN.id, email: ANN.email } }, 'the app still accepts the replayed cookie after logout');

    // Replayed in a fresh browser: the app page renders, every image is refused.
    const thief = await newContext(t);
    await thief.addCookies([saved]);
    const replay = await thief.newPage();
    for (const [k, name] of [
      [a, 'the replica that saw the logout'],
      [b, 'another replica sharing Redis'],
    ] as const) {
      const from = k.audits().length;
      const nav = await replay.goto(`${k.base}/projects/1/`);
      t.equal(nav?.status(), 200, `${name}: the app serves its page to the replayed cookie`);
      t.equal(await replay.locator('#who').textContent(), `Signed in as ${ANN.email}`, `${name}: as ${ANN.email}`);
      t.same((await replay.evaluate(() => window.labeling.ready)).images, refusedAll('1'), `${name}: no task image renders`);
      t.same(await grid(replay), refusedAll('1'), `${name}: naturalWidth 0 for every image`);
      const refused = await auditsSince(k, from, forUris(refusedAll('1').map((x) => x.uri)), 4);
      t.same(
        refused.map((e) => ({ decision: e.decision, reason: e.reason, status: e.status })),
        refusedAll('1').map(() => ({ decision: 'deny', reason: 'session_logged_out', status: 401 })),
        `${name}: audited as session_logged_out`,
      );
    }
    await replay.screenshot({ path: join(ARTIFACTS, 'labeling-3a-replayed-cookie.png'), fullPage: true });
  });

  t.test('recipe 3b: minted per-project tokens, scope, revocation of the user', async (t) => {
    const context = await newContext(t);
    const page = await context.newPage();
    const from = c.audits().length;
    await signIn(t, page, c.base, BEN);
    const state = await page.evaluate(() => window.labeling.ready);
    t.equal(state.session, 204, 'the page POSTed its minted token to /v1/session');
    const kh = (await context.cookies(c.base)).find((x) => x.name === '__Host-keyhole');
    t.ok(kh && kh.httpOnly && kh.secure && kh.path === '/', "Keyhole's __Host- cookie is set");
    t.same(state.images, shownAll('1'), 'the images of project 1 render');
    t.same(await grid(page), shownAll('1'), '(naturalWidth > 0)');
    const allowed = await auditsSince(c, from, forUris(shownAll('1').map((x) => x.uri)), 4);
    t.same(summary(allowed), expected('1', String(BEN.id), 'allow', 'ok', 200), 'audited as allowed for the minted subject');
    t.ok(allowed.every((e) => e.tokenSource === 'cookie'), 'read with the session cookie the token became');
    t.equal(app3b.whoamiCalls(BEN.id), 0, 'with a token, Keyhole does not ask whoami');

    // Scope: project 2 is not in the token, and the app mints none for it.
    const p2 = uriOf('2', 0);
    const before = c.audits().length;
    t.same(await page.evaluate((src) => window.labeling.addImage(src), dataUrl(p2)), { uri: dataUrl(p2), ok: false, w: 0, h: 0 }, 'an injected image of project 2 does not render');
    const [scope] = await auditsSince(c, before, forUris([p2]), 1);
    t.hasStrict(scope, { sub: String(BEN.id), decision: 'deny', reason: 'scope_denied', status: 403 }, 'audited as scope_denied');
    t.equal(await page.evaluate(async () => (await fetch('/api/keyhole-token?project=2')).status), 403, 'the app mints no token for a project the user is not in');

    // Revocation of the user: the next image is refused, though the cookie is still there.
    t.equal(await revoke(c, { sub: String(BEN.id) }), 200, 'POST /admin/revoke {sub}');
    const again = `${dataUrl(uriOf('1', 0))}&n=after-revoke`;
    const beforeRevoked = c.audits().length;
    t.same(await page.evaluate((src) => window.labeling.addImage(src), again), { uri: again, ok: false, w: 0, h: 0 }, 'after revocation the next image does not render');
    const [revoked] = await auditsSince(c, beforeRevoked, forUris([uriOf('1', 0)]), 1);
    t.hasStrict(revoked, { sub: String(BEN.id), decision: 'deny', reason: 'token_revoked', status: 401 }, 'audited as token_revoked');

    // Without the token (DELETE /v1/session) the app cookie remains and introspection is on:
    // the revoked subject stays revoked whichever way it authenticates.
    t.equal(await page.evaluate(() => window.labeling.keyholeSession('DELETE')), 204, 'DELETE /v1/session');
    const left = await context.cookies(c.base);
    t.notOk(left.some((x) => x.name === '__Host-keyhole'), "Keyhole's cookie is gone");
    t.ok(left.some((x) => x.name === 'sessionid'), "the app's sessionid is still in the browser");
    const third = `${dataUrl(uriOf('1', 1))}&n=after-delete`;
    const beforeIntrospected = c.audits().length;
    t.same(await page.evaluate((src) => window.labeling.addImage(src), third), { uri: third, ok: false, w: 0, h: 0 }, 'through introspection the revoked user is still refused');
    const [introspected] = await auditsSince(c, beforeIntrospected, forUris([uriOf('1', 1)]), 1);
    t.hasStrict(introspected, { sub: String(BEN.id), decision: 'deny', reason: 'token_revoked', status: 401 }, 'audited as token_revoked, the subject named by whoami');
    t.equal(app3b.whoamiCalls(BEN.id), 1, 'that answer came from introspection: whoami was asked with the sessionid');
    await page.screenshot({ path: join(ARTIFACTS, 'labeling-3b-revoked.png'), fullPage: true });

    // Control: a user nobody revoked, the same way (token, then introspection), is served.
    const other = await (await newContext(t)).newPage();
    await signIn(t, other, c.base, CID);
    t.same((await other.evaluate(() => window.labeling.ready)).images, shownAll('1'), 'another user: images render with the minted token');
    t.equal(await other.evaluate(() => window.labeling.keyholeSession('DELETE')), 204, 'DELETE /v1/session');
    const viaIntrospection = `${dataUrl(uriOf('1', 1))}&n=introspected`;
    const beforeControl = c.audits().length;
    t.same(await other.evaluate((src) => window.labeling.addImage(src), viaIntrospection), { uri: viaIntrospection, ok: true, ...sizeOf('1', 1) }, 'and, token gone, through introspection');
    const [served] = await auditsSince(c, beforeControl, forUris([uriOf('1', 1)]), 1);
    t.hasStrict(served, { sub: String(CID.id), decision: 'allow', reason: 'ok', status: 200 }, 'audited as allowed for that user');
    t.equal(app3b.whoamiCalls(CID.id), 1, 'whoami asked for that user once');

    // Logout through the app's link: the page ends Keyhole's session, then the app's.
    await other.reload();
    t.equal((await other.evaluate(() => window.labeling.ready)).session, 204, 'a page load mints and sets a new session');
    await Promise.all([other.waitForURL(`${c.base}/user/login`), other.click('#logout')]);
    const after = (await other.context().cookies(c.base)).map((x) => x.name);
    t.notOk(after.includes('__Host-keyhole') || after.includes('sessionid'), `logout cleared both sessions (left: ${after.join(', ')})`);
  });
}
