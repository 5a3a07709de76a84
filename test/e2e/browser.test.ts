/// <reference lib="dom" />
// The real-browser proof: headless Chromium (Debian's `chromium`, driven by playwright-core;
// nothing downloads a browser) loads a labeling page served by a test app behind Keyhole,
// and a page from another origin, and reads data through Keyhole the ways annotators do.
// Chromium trusts the test server certificate through --ignore-certificate-errors-spki-list
// (its SPKI hash), not through a blanket ignoreHTTPSErrors. Screenshots: test-artifacts/.
import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttps, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, type Page } from 'playwright-core';
import { request } from 'undici';
import { ADMIN_TOKEN, baseYaml, dataUrl, startKeyhole, type Running } from '../helpers/keyhole.ts';
import { testCerts } from '../helpers/certs.ts';
import { startTestApp, type TestApp } from '../app/test-app.ts';
import { chromiumPresent, launchChromium } from './support/chromium.ts';

const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'e2e');

if (chromiumPresent(t)) {
  const PNG = readFileSync(join(process.cwd(), 'samples', 'gradient.png'));
  const PNG_SIZE = { w: PNG.readUInt32BE(16), h: PNG.readUInt32BE(20) };

  const LABEL_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>Label task 7</title>
<style>body{font:14px sans-serif} figure{display:inline-block;margin:8px;border:1px solid #999;padding:4px} img{width:128px;image-rendering:pixelated}</style>
</head><body><h1>Task 7</h1><div id="board"></div></body></html>`;
  const OTHER_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>Other origin</title></head><body><h1>Review tool</h1><div id="out"></div></body></html>`;

  let app: TestApp;
  let other: Server;
  let otherOrigin: string;
  let k: Running;
  let context: BrowserContext;
  let svgDir: string;

  t.before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    svgDir = mkdtempSync(join(tmpdir(), 'keyhole-svg-'));
    writeFileSync(
      join(svgDir, 'evil.svg'),
      `<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" onload="window.pwnedOnload = 1">` +
        `<script>window.pwned = 1; document.documentElement.setAttribute('data-pwned', '1');</script>` +
        `<rect width="40" height="40" fill="red"/></svg>`,
    );
    app = await startTestApp({
      '/label': (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'set-cookie': 'sessionid=app-session; Path=/' });
        res.end(LABEL_PAGE);
      },
    });
    const certs = testCerts();
    other = createHttps({ cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(OTHER_PAGE);
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    otherOrigin = `https://127.0.0.1:${(other.address() as AddressInfo).port}`;
    k = await startKeyhole(
      baseYaml(`providers:
  - { name: samples, kind: local, match: "local://samples/", root: ${process.cwd()}/samples }
  - { name: svg, kind: local, match: "local://svg/", root: ${svgDir} }
cors:
  origins: ["${otherOrigin}"]
app:
  upstream: ${app.origin}
`),
    );
    context = await launchChromium(t);
  });

  t.teardown(async () => {
    await k?.close();
    await app?.close();
    await new Promise<void>((r) => (other ? other.close(() => r()) : r()));
    if (svgDir) rmSync(svgDir, { recursive: true, force: true });
  });

  /** Adds an <img> to the board and waits for it to load or fail; returns its decoded size. */
  const loadImage = (page: Page, src: string, label: string) =>
    page.evaluate(
      ({ src, label }) =>
        new Promise<{ ok: boolean; w: number; h: number }>((resolve) => {
          const fig = document.createElement('figure');
          const img = document.createElement('img');
          const cap = document.createElement('figcaption');
          cap.textContent = label;
          img.onload = () => resolve({ ok: true, w: img.naturalWidth, h: img.naturalHeight });
          img.onerror = () => resolve({ ok: false, w: img.naturalWidth, h: img.naturalHeight });
          img.src = src;
          fig.append(img, cap);
          document.getElementById('board')!.append(fig);
        }),
      { src, label },
    );

  const session = (page: Page, method: 'POST' | 'DELETE', token?: string) =>
    page.evaluate(
      async ({ method, token }) => {
        const res = await fetch('/v1/session', {
          method,
          credentials: 'same-origin',
          ...(token ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) } : {}),
        });
        return res.status;
      },
      { method, token },
    );

  t.test('the labeling page, through Keyhole, reads data the ways annotators do', async (t) => {
    const page = await context.newPage();
    const responses: { url: string; status: number }[] = [];
    page.on('response', (r) => responses.push({ url: r.url(), status: r.status() }));

    const nav = await page.goto(`${k.base}/label`);
    t.equal(nav?.status(), 200, 'the app page comes through Keyhole');
    t.equal(await page.locator('h1').textContent(), 'Task 7', 'and renders');
    const hsts = await nav?.headerValue('strict-transport-security');
    t.match(hsts, /max-age=\d+/, 'HSTS on app responses');
    t.match(await nav?.headerValue('set-cookie'), /sessionid=app-session.*Secure.*HttpOnly.*SameSite=Lax/, 'the app cookie was hardened');

    const png = 'local://samples/gradient.png';
    // No session yet: the image fails.
    const none = await loadImage(page, dataUrl(png), 'no session');
    t.same(none, { ok: false, w: 0, h: 0 }, 'without a session the image does not decode');

    // A ?token= link: what an app puts in <img src> when it cannot set a cookie.
    const linkToken = await k.token({ sub: 'annotator-1', uri: png });
    const viaLink = await loadImage(page, dataUrl(png, linkToken), '?token= link');
    t.same(viaLink, { ok: true, ...PNG_SIZE }, 'image via ?token= decodes at its real size');

    // The cookie: the page POSTs its token to /v1/session; plain <img> URLs then work.
    const sessionToken = await k.token({ sub: 'annotator-1', scope: ['local://samples/', 'local://svg/'], jti: 'session-1' });
    t.equal(await session(page, 'POST', sessionToken), 204, 'POST /v1/session sets the cookie');
    const cookies = await context.cookies(k.base);
    const kh = cookies.find((c) => c.name === '__Host-keyhole');
    t.ok(kh && kh.httpOnly && kh.secure && kh.path === '/', 'the session cookie is __Host-, Secure, HttpOnly');
    t.equal(await page.evaluate(() => document.cookie.includes('__Host-keyhole')), false, 'and invisible to page script');
    const viaCookie = await loadImage(page, `${dataUrl(png)}&n=cookie`, 'cookie');
    t.same(viaCookie, { ok: true, ...PNG_SIZE }, 'image via the cookie decodes at its real size');
    // Chromium speaks HTTP/2 to Keyhole (ALPN h2): the page and the images.
    const protocols = await page.evaluate(() =>
      [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')].map((e) => (e as PerformanceResourceTiming).nextHopProtocol),
    );
    t.ok(protocols.length >= 3, `timing entries for the page and its loads (${protocols.length})`);
    t.same([...new Set(protocols)], ['h2'], 'the page and every data load over HTTP/2');

    // Audio, seeked near its end: Range requests through Keyhole.
    const audio = await page.evaluate(
      (src) =>
        new Promise<{ duration: number; before: number; after: number; error?: string }>((resolve) => {
          const el = document.createElement('audio');
          el.controls = true;
          el.preload = 'auto';
          document.getElementById('board')!.append(el);
          el.onerror = () => resolve({ duration: NaN, before: NaN, after: NaN, error: String(el.error?.message ?? el.error?.code) });
          el.onloadedmetadata = () => {
            const before = el.currentTime;
            el.onseeked = () => resolve({ duration: el.duration, before, after: el.currentTime });
            el.currentTime = el.duration - 0.2;
          };
          el.src = src;
        }),
      dataUrl('local://samples/tone.wav'),
    );
    t.equal(audio.error, undefined, 'the audio loads');
    t.ok(Math.abs(audio.duration - 3) < 0.05, `the audio is 3 s long (${audio.duration})`);
    t.equal(audio.before, 0);
    t.ok(audio.after > 2.5, `currentTime moved near the end (${audio.after})`);
    const wav = k.audits().filter((a) => String(a.uri).endsWith('tone.wav'));
    t.ok(wav.some((a) => a.status === 206), `a 206 Partial Content was served (${wav.map((a) => a.status).join(',')})`);

    // Revocation ("reset the token"): the session token is revoked on the admin listener;
    // the next image the page asks for fails, though the cookie is still there.
    const revoke = await request(`${k.admin}/admin/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jti: 'session-1' }),
    });
    t.equal(revoke.statusCode, 200, 'POST /admin/revoke');
    await revoke.body.dump();
    t.ok((await context.cookies(k.base)).some((c) => c.name === '__Host-keyhole'), 'the cookie is still in the browser');
    t.same(await loadImage(page, `${dataUrl(png)}&n=revoked`, 'after revoke'), { ok: false, w: 0, h: 0 }, 'the revoked token no longer decodes an image');
    const refused = k.audits().find((a) => a.reason === 'token_revoked');
    t.equal(refused?.status, 401, 'audited as token_revoked');

    await page.screenshot({ path: join(ARTIFACTS, 'label-page.png'), fullPage: true });

    // DELETE /v1/session clears the cookie.
    t.equal(await session(page, 'DELETE'), 204);
    t.notOk((await context.cookies(k.base)).some((c) => c.name === '__Host-keyhole'), 'DELETE /v1/session cleared the cookie');
    t.ok(responses.some((r) => r.url.includes('tone.wav')), 'the browser fetched the audio through Keyhole');
    await page.close();
  });

  t.test('an SVG with script, opened as a document, does not run its script', async (t) => {
    const page = await context.newPage();
    const token = await k.token({ sub: 'annotator-1', uri: 'local://svg/evil.svg' });
    const nav = await page.goto(`${k.base}${dataUrl('local://svg/evil.svg', token)}`);
    t.equal(nav?.status(), 200);
    t.match(await nav?.headerValue('content-security-policy'), /sandbox/, 'served with CSP sandbox');
    t.equal(await nav?.headerValue('x-content-type-options'), 'nosniff');
    const state = await page.evaluate(() => ({
      root: document.documentElement.nodeName,
      rects: document.querySelectorAll('rect').length,
      pwned: (window as unknown as { pwned?: number }).pwned,
      pwnedOnload: (window as unknown as { pwnedOnload?: number }).pwnedOnload,
      marked: document.documentElement.getAttribute('data-pwned'),
    }));
    t.equal(state.root, 'svg', 'the SVG document was parsed');
    t.equal(state.rects, 1, 'and its shapes are in the DOM');
    t.equal(state.pwned, undefined, 'its <script> did not run');
    t.equal(state.pwnedOnload, undefined, 'its onload handler did not run');
    t.equal(state.marked, null, 'the script never touched the DOM');
    await page.screenshot({ path: join(ARTIFACTS, 'svg-document.png') });
    await page.close();
  });

  t.test('a page on another origin reads data with CORS and credentials', async (t) => {
    const page = await context.newPage();
    await page.goto(`${otherOrigin}/`);
    t.equal(await page.locator('h1').textContent(), 'Review tool');
    const token = await k.token({ sub: 'reviewer', scope: ['local://samples/'] });
    const got = await page.evaluate(
      async ({ url, token }) => {
        const res = await fetch(url, { credentials: 'include', headers: { authorization: `Bearer ${token}` } });
        const bitmap = await createImageBitmap(await res.blob());
        const out = document.getElementById('out')!;
        out.textContent = `${bitmap.width}x${bitmap.height}`;
        return { status: res.status, w: bitmap.width, h: bitmap.height, requestId: res.headers.get('x-request-id'), shown: out.textContent };
      },
      { url: `${k.base}${dataUrl('local://samples/gradient.png')}`, token },
    );
    t.equal(got.status, 200);
    t.same({ w: got.w, h: got.h }, PNG_SIZE, 'the cross-origin page decoded the image');
    t.ok(got.requestId, 'exposed headers are readable cross-origin');
    t.equal(await page.locator('#out').textContent(), `${PNG_SIZE.w}x${PNG_SIZE.h}`, 'and shows it');
    // Without the token the cross-site request carries no usable credential. (A new URL, and
    // no-store: Chromium would otherwise answer from the copy it cached for the request above.)
    const anonymous = await page.evaluate(
      async (url) => (await fetch(url, { credentials: 'include', cache: 'no-store' })).status,
      `${k.base}${dataUrl('local://samples/gradient.png')}&n=anonymous`,
    );
    t.equal(anonymous, 401, 'the cross-origin page cannot read data without a token');
    await page.screenshot({ path: join(ARTIFACTS, 'other-origin.png') });
    await page.close();
  });
}
