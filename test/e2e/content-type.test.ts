/// <reference lib="dom" />
// Hostile Content-Type values, in a real browser. An upstream behind the http provider
// answers each row of the table with a body that runs script wherever a browser renders
// it as a document (an SVG root: HTML, XHTML, SVG and XML all run its <script> and
// onload). Headless Chromium (Debian's, driven by playwright-core, as in browser.test.ts)
// opens every data URL top-level and in an iframe of the labeling page (Keyhole's own
// origin). No row may run script: no global set, no message to the parent, no request to
// the canary server. Normal data must keep working beside it: a PNG decodes in <img>, a
// WAV loads in <audio>, fetch() reads the bytes, and opened top-level they still show.
// Then the loads the sandbox does not govern: objects typed as scripts, styles and
// WebAssembly (by a real nginx and by redis) loaded as scripts, workers, service workers,
// worklets and stylesheets from the app's pages: none may run or apply.
import t from 'tap';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttp, type Server as HttpServer } from 'node:http';
import { createServer as createHttps, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type BrowserContext, type Page } from 'playwright-core';
import { baseYaml, dataUrl, startKeyhole, type Running } from '../helpers/keyhole.ts';
import { testCerts } from '../helpers/certs.ts';
import { startTestApp, type TestApp } from '../app/test-app.ts';
import { startNginx } from '../helpers/real-servers.ts';
import { corpProviderYaml } from '../helpers/upstream.ts';
import { startRedis, testClient } from '../helpers/redis.ts';
import { chromiumPresent, launchChromium } from './support/chromium.ts';

const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'e2e');

interface Row {
  /** Content-Type header lines as the upstream sends them (none: no Content-Type at all) */
  types: readonly string[];
  disposition?: string;
  /** a body of its own (multipart); otherwise the script-running SVG/HTML payload */
  body?: (row: number, canary: string) => string;
}

/** The hostile table: lists, case, parameters, quoted commas, wildcards, empties, active types. */
const ROWS: readonly Row[] = [
  { types: ['text/plain, text/html'] },
  { types: ['image/png, image/svg+xml'] },
  { types: ['application/octet-stream, text/html'] },
  { types: ['TEXT/PLAIN, TEXT/HTML'] },
  { types: ['text/plain,text/html'] },
  { types: ['text/plain,\ttext/html'] },
  { types: ['text/html;charset=utf-8, text/plain'] },
  { types: ['text/plain; charset=utf-8, text/html; charset=utf-8'] },
  { types: ['text/plain;x=", text/html"'] },
  { types: ['text/plain;x="a, text/html'] },
  { types: ['text/plain;x=\', text/html'] },
  { types: ['*/*'] },
  { types: ['text/plain, */*'] },
  { types: ['*/*, text/html'] },
  { types: [''] },
  { types: [] },
  { types: [', text/html'] },
  { types: ['bogus, text/html'] },
  { types: ['text/html(;x=y, text/html;'] },
  { types: ['text/x-unknown, text/html'] },
  { types: ['application/json, text/html'] },
  { types: ['text/vtt, text/html'] },
  { types: ['video/mp4, text/html'] },
  { types: ['audio/wav, text/html'] },
  { types: ['audio/wav'] },
  { types: ['video/mp4'] },
  { types: ['video/x-evil+xml'] },
  { types: ['audio/wav, video/x-evil+xml'] },
  { types: ['text/html'] },
  { types: ['text/html; charset=utf-8'] },
  { types: ['image/svg+xml'] },
  { types: ['image/svg+xml;charset=utf-8'] },
  { types: ['application/xhtml+xml'] },
  { types: ['text/xml'] },
  { types: ['application/xml'] },
  { types: ['application/rss+xml'] },
  { types: ['text/xsl'] },
  { types: ['application/pdf'] },
  { types: ['application/javascript'] },
  { types: ['text/javascript, text/html'] },
  { types: ['text/plain', 'text/html'] },
  { types: ['image/png', 'image/svg+xml'] },
  { types: ['text/plain', ''] },
  { types: ['text/plain'], disposition: 'inline; filename="page.html"' },
  { types: ['text/html'], disposition: 'inline; filename="page.html"' },
  { types: ['application/octet-stream'], disposition: 'inline; filename="page.svg"' },
  {
    types: ['multipart/x-mixed-replace;boundary=kh'],
    body: (row, canary) => `--kh\r\nContent-Type: text/html\r\n\r\n${payload(row, canary)}\r\n--kh--\r\n`,
  },
  {
    types: ['text/plain, multipart/x-mixed-replace;boundary=kh'],
    body: (row, canary) => `--kh\r\nContent-Type: text/html\r\n\r\n${payload(row, canary)}\r\n--kh--\r\n`,
  },
];

/**
 * Runs script as HTML (an <svg> in the body), SVG, XHTML and any XML type (an SVG-namespace
 * root renders as SVG). The script leaves three marks: a global, a DOM attribute, a message
 * to the parent frame, and asks the canary server for a URL. No '&' outside CDATA: XML.
 */
function payload(row: number, canary: string): string {
  const script =
    `(function(){var r=${row};try{window.__pwned=r;document.documentElement.setAttribute('data-pwned',String(r))}catch(e){}` +
    `try{parent.postMessage('pwned:'+r,'*')}catch(e){}` +
    `try{fetch('${canary}/hit?row='+r+'&via=fetch',{mode:'no-cors'})}catch(e){}` +
    `try{new Image().src='${canary}/hit?row='+r+'&via=img'}catch(e){}})()`;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" onload="window.__pwnedOnload=${row};parent.postMessage('pwned-onload:${row}','*')">` +
    `<script><![CDATA[${script}]]></script><rect width="40" height="40" fill="red"/></svg>`
  );
}

if (chromiumPresent(t)) {
  const PNG = readFileSync(join(process.cwd(), 'samples', 'gradient.png'));
  const PNG_SIZE = { w: PNG.readUInt32BE(16), h: PNG.readUInt32BE(20) };
  const WAV = readFileSync(join(process.cwd(), 'samples', 'tone.wav'));
  const CSV = Array.from({ length: 300 }, (_, i) => `row${i},${i % 13}`).join('\n');
  const CSV_GZ = gzipSync(CSV);
  const LABEL_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>Label task 9</title></head><body><h1>Task 9</h1><div id="board"></div></body></html>`;

  let app: TestApp;
  let upstream: HttpServer;
  let canaryServer: HttpsServer;
  let canary: string;
  const canaryHits: string[] = [];
  let k: Running;
  let context: BrowserContext;
  let token: string;

  const rowUrl = (i: number) => `${k.base}${dataUrl(`https://data.corp/row/${i}`, token)}`;

  t.before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const certs = testCerts();
    // The canary: any request here means script ran somewhere it must not.
    canaryServer = createHttps({ cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) }, (req, res) => {
      canaryHits.push(req.url ?? '');
      res.writeHead(204, { 'access-control-allow-origin': '*' });
      res.end();
    });
    await new Promise<void>((r) => canaryServer.listen(0, '127.0.0.1', r));
    canary = `https://127.0.0.1:${(canaryServer.address() as AddressInfo).port}`;

    // The upstream sends each row's header lines exactly (node writes a flat list as given).
    upstream = createHttp((req, res) => {
      const path = req.url!.split('?')[0]!;
      const media: Record<string, [string, Buffer]> = { '/media/gradient.png': ['image/png', PNG], '/media/tone.wav': ['audio/wav', WAV] };
      const known = media[path];
      if (known) {
        res.writeHead(200, ['content-type', known[0], 'content-length', String(known[1].length)]);
        res.end(req.method === 'HEAD' ? undefined : known[1]);
        return;
      }
      if (path === '/media/table.csv') {
        // As S3 or GCS answer for an object uploaded compressed: encoded, whatever was asked.
        res.writeHead(200, ['content-type', 'text/csv', 'content-encoding', 'gzip', 'content-length', String(CSV_GZ.length)]);
        res.end(req.method === 'HEAD' ? undefined : CSV_GZ);
        return;
      }
      const i = Number(/^\/row\/(\d+)$/.exec(path)?.[1] ?? NaN);
      const row = ROWS[i];
      if (!row) {
        res.writeHead(404);
        res.end();
        return;
      }
      const body = Buffer.from(row.body ? row.body(i, canary) : payload(i, canary));
      const fields: string[] = [];
      for (const v of row.types) fields.push('content-type', v);
      if (row.disposition) fields.push('content-disposition', row.disposition);
      fields.push('content-length', String(body.length));
      res.writeHead(200, fields);
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));

    app = await startTestApp({
      '/label': (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(LABEL_PAGE);
      },
    });
    k = await startKeyhole(
      baseYaml(`${corpProviderYaml(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`)}app:\n  upstream: ${app.origin}\n`),
    );
    token = await k.token({ sub: 'annotator-1', scope: ['https://data.corp/'] });
    context = await launchChromium(t, [
      // a second, plain-HTTP Keyhole under a name that is no secure origin: no Fetch metadata
      '--host-resolver-rules=MAP kh-plain.test 127.0.0.1',
    ]);
  });

  t.teardown(async () => {
    await k?.close();
    await app?.close();
    await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
    await new Promise<void>((r) => (canaryServer ? canaryServer.close(() => r()) : r()));
  });

  /** What a document left behind, read from the page itself (null: it is not a document we can read). */
  const marks = (page: Page) =>
    page
      .evaluate(() => ({
        pwned: (window as unknown as { __pwned?: number }).__pwned ?? null,
        onload: (window as unknown as { __pwnedOnload?: number }).__pwnedOnload ?? null,
        attr: document.documentElement?.getAttribute('data-pwned') ?? null,
      }))
      .catch(() => null);

  t.test('no hostile Content-Type runs script on Keyhole’s origin, top-level or framed', async (t) => {
    const label = await context.newPage();
    t.equal((await label.goto(`${k.base}/label`))?.status(), 200, 'the labeling page comes through Keyhole');
    // Messages the framed rows post to their parent, the labeling page.
    await label.evaluate(() => {
      (window as unknown as { __messages: string[] }).__messages = [];
      window.addEventListener('message', (e) => (window as unknown as { __messages: string[] }).__messages.push(String(e.data)));
    });

    // Top-level navigation, four tabs at a time. A type Chromium downloads instead of
    // rendering ends the navigation with an error, which is fine: nothing rendered, nothing ran.
    const topLevel = async (top: Page, i: number) => {
      const row = ROWS[i]!;
      const name = `row ${i} ${JSON.stringify(row.types)}${row.disposition ? ` + ${row.disposition}` : ''}`;
      let status: number | undefined;
      let headers: Record<string, string> = {};
      try {
        const nav = await top.goto(rowUrl(i), { waitUntil: 'load' });
        status = nav?.status();
        headers = (await nav?.allHeaders()) ?? {};
      } catch (err) {
        t.match(String(err), /Download is starting|ERR_ABORTED|ERR_BLOCKED_BY_RESPONSE/, `${name}: top-level ended without rendering`);
      }
      if (status !== undefined) {
        t.equal(status, 200, `${name}: top-level status`);
        t.match(headers['content-security-policy'] ?? '', /^sandbox[;\s]/, `${name}: sandboxed`);
        t.equal(headers['x-content-type-options'], 'nosniff', `${name}: nosniff`);
        t.notOk(String(headers['content-type'] ?? '').includes(','), `${name}: one type only (${headers['content-type']})`);
        const m = await marks(top);
        t.same(m === null ? null : { pwned: m.pwned, onload: m.onload, attr: m.attr }, m === null ? null : { pwned: null, onload: null, attr: null }, `${name}: no script ran top-level`);
      }
      await top.goto('about:blank');
    };
    const tabs = await Promise.all([1, 2, 3, 4].map(() => context.newPage()));
    let next = 0;
    await Promise.all(
      tabs.map(async (tab) => {
        for (let i = next++; i < ROWS.length; i = next++) await topLevel(tab, i);
      }),
    );

    // Framed by the labeling page (same origin as Keyhole's data answers): every row at once.
    const framed = await label.evaluate(
      (srcs) =>
        Promise.all(
          srcs.map(
            (src) =>
              new Promise<{ pwned: number | null; onload: number | null; attr: string | null; readable: boolean }>((resolve) => {
                const frame = document.createElement('iframe');
                // (methods, not named arrow functions: tsx would wrap those in a helper the page lacks)
                const look = {
                  done: false,
                  finish() {
                    if (look.done) return;
                    look.done = true;
                    let out = { pwned: null as number | null, onload: null as number | null, attr: null as string | null, readable: false };
                    try {
                      // Readable only if the frame is same-origin: then its marks tell.
                      const w = frame.contentWindow as unknown as { __pwned?: number; __pwnedOnload?: number; document: Document };
                      out = { pwned: w.__pwned ?? null, onload: w.__pwnedOnload ?? null, attr: w.document.documentElement?.getAttribute('data-pwned') ?? null, readable: true };
                    } catch {
                      // an opaque (sandboxed) document: script there cannot reach Keyhole's origin
                    }
                    resolve(out);
                  },
                };
                frame.onload = () => setTimeout(() => look.finish(), 200);
                // A download in a frame never fires load: stop looking after a while.
                setTimeout(() => look.finish(), 5000);
                frame.src = src;
                document.getElementById('board')!.append(frame);
              }),
          ),
        ),
      ROWS.map((_, i) => rowUrl(i)),
    );
    for (let i = 0; i < ROWS.length; i++) {
      const f = framed[i]!;
      t.same({ pwned: f.pwned, onload: f.onload, attr: f.attr }, { pwned: null, onload: null, attr: null }, `row ${i} ${JSON.stringify(ROWS[i]!.types)}: no script ran in the frame (readable: ${f.readable})`);
    }

    // Give any stray request time to land, then: the parent got no message, the canary no hit.
    await label.waitForTimeout(500);
    const messages = await label.evaluate(() => (window as unknown as { __messages: string[] }).__messages);
    t.same(messages, [], 'no framed row posted a message to the labeling page');
    t.same(canaryHits, [], 'the canary server was never asked for anything');
    const audited = k.audits().filter((a) => String(a.uri).startsWith('https://data.corp/row/'));
    t.ok(audited.length >= ROWS.length, `every row went through Keyhole (${audited.length} data answers)`);
    for (const tab of tabs) await tab.close();
    await label.close();
  });

  t.test('normal data still works with the CSP on every answer', async (t) => {
    const page = await context.newPage();
    await page.goto(`${k.base}/label`);
    const png = `${k.base}${dataUrl('https://data.corp/media/gradient.png', token)}`;
    const wav = `${k.base}${dataUrl('https://data.corp/media/tone.wav', token)}`;
    const got = await page.evaluate(
      async ({ png, wav }) => {
        const img = await new Promise<{ ok: boolean; w: number; h: number }>((resolve) => {
          const el = document.createElement('img');
          el.onload = () => resolve({ ok: true, w: el.naturalWidth, h: el.naturalHeight });
          el.onerror = () => resolve({ ok: false, w: 0, h: 0 });
          el.src = png;
          document.getElementById('board')!.append(el);
        });
        const played: { duration: number; error?: string }[] = [];
        for (const tag of ['audio', 'video'] as const) {
          played.push(
            await new Promise<{ duration: number; error?: string }>((resolve) => {
              const el = document.createElement(tag);
              el.preload = 'auto';
              el.onloadedmetadata = () => resolve({ duration: el.duration });
              el.onerror = () => resolve({ duration: NaN, error: String(el.error?.message ?? el.error?.code) });
              el.src = wav;
              document.getElementById('board')!.append(el);
            }),
          );
        }
        const [audio, video] = played as [{ duration: number; error?: string }, { duration: number; error?: string }];
        const res = await fetch(png);
        const bytes = (await res.arrayBuffer()).byteLength;
        return { img, audio, video, fetched: { status: res.status, bytes, csp: res.headers.get('content-security-policy') } };
      },
      { png, wav },
    );
    t.same(got.img, { ok: true, ...PNG_SIZE }, '<img> decodes the PNG at its real size');
    t.equal(got.audio.error, undefined, '<audio> loads the WAV');
    t.ok(Math.abs(got.audio.duration - 3) < 0.05, `its duration is read (${got.audio.duration})`);
    t.equal(got.video.error, undefined, '<video> loads the WAV too');
    t.same({ status: got.fetched.status, bytes: got.fetched.bytes }, { status: 200, bytes: PNG.length }, 'fetch() reads every byte');
    t.match(got.fetched.csp ?? '', /^sandbox/, 'with the CSP on the answer');

    // An object stored gzip-encoded: the browser is told, and reads the text it encodes.
    const csv = await page.evaluate(async (url) => {
      const res = await fetch(url);
      return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
    }, `${k.base}${dataUrl('https://data.corp/media/table.csv', token)}`);
    t.same(csv, { status: 200, type: 'text/csv', text: CSV }, 'a gzip-stored object reads as its text in the browser');

    // Opened on their own (a new tab on the data URL): the image, the sound and text still show.
    const tab = await context.newPage();
    const imgNav = await tab.goto(png);
    t.match((await imgNav?.headerValue('content-security-policy')) ?? '', /^sandbox/, 'the image answer is sandboxed');
    t.equal(await tab.evaluate(() => document.querySelector('img')?.naturalWidth ?? 0), PNG_SIZE.w, 'the image shows top-level');
    await tab.screenshot({ path: join(ARTIFACTS, 'content-type-image.png') });
    const wavNav = await tab.goto(wav);
    t.match((await wavNav?.headerValue('content-security-policy')) ?? '', /^sandbox/, 'the audio answer is sandboxed');
    const played = await tab.evaluate(
      () =>
        new Promise<{ duration: number; error?: string }>((resolve) => {
          const el = document.querySelector('video, audio') as HTMLMediaElement | null;
          if (!el) return resolve({ duration: NaN, error: 'no media element' });
          if (el.readyState >= 1) return resolve({ duration: el.duration });
          el.addEventListener('loadedmetadata', () => resolve({ duration: el.duration }));
          el.addEventListener('error', () => resolve({ duration: NaN, error: String(el.error?.message ?? el.error?.code) }));
        }),
    );
    t.equal(played.error, undefined, 'the sound loads top-level');
    t.ok(Math.abs(played.duration - 3) < 0.05, `in the browser's own player (${played.duration})`);
    const textRow = ROWS.findIndex((r) => r.types.length === 1 && r.types[0] === 'text/html;charset=utf-8, text/plain');
    await tab.goto(rowUrl(textRow));
    t.match(await tab.evaluate(() => document.body?.innerText ?? ''), /<svg xmlns/, 'a list ending in text/plain shows as text: the markup, inert');
    await tab.close();
    await page.close();
  });

  t.test('scripts, workers, service workers, worklets and stylesheets: no data answer runs or applies', async (t) => {
    // Each object reports that it ran, by every channel its context has: a BroadcastChannel
    // message to the page (same origin; no CSP governs it: a worker's own CSP is the data
    // answer's default-src 'none', which blocks its fetch), a request to /ran on the origin it
    // runs on (the labeling app records it), a message from a dedicated or shared worker.
    // Worklets have none: their addModule() resolving is the sign. One object per load.
    const js = (tag: string) =>
      `(function(){try{new BroadcastChannel('kh-ran').postMessage('${tag}')}catch(e){}` +
      `try{var o=self.location.origin;fetch(o+'/ran?tag=${tag}&origin='+encodeURIComponent(o),{mode:'no-cors'})}catch(e){}` +
      `try{if(typeof DedicatedWorkerGlobalScope!=='undefined')postMessage('ran')}catch(e){}` +
      `try{if(typeof SharedWorkerGlobalScope!=='undefined')self.onconnect=function(e){e.ports[0].postMessage('ran')}}catch(e){}})();`;
    const css = (tag: string) => `:root{--kh-${tag}:applied}`;
    const WASM = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]); // an empty module
    const JS_KINDS = ['classic', 'module', 'dynimport', 'worker', 'modworker', 'shared', 'imported', 'sw', 'paint', 'audio', 'csp-classic'];
    const CSS_KINDS = ['link', 'atimport', 'cssmodule', 'quirks-link'];
    const objects = (source: string): Record<string, string | Buffer> => {
      const out: Record<string, string | Buffer> = { 'probe.wasm': WASM, 'data.json': '{"labels":[1,2]}' };
      for (const kind of JS_KINDS) out[`${kind}.js`] = js(`${source}-${kind}`);
      for (const kind of CSS_KINDS) out[`${kind}.css`] = css(`${source}-${kind}`);
      return out;
    };
    const typeOf = (file: string) => ({ js: 'text/javascript', css: 'text/css', wasm: 'application/wasm', json: 'application/json' })[file.split('.').pop()!]!;

    // The in-page probes: the app's own script (script-src 'self' allows it).
    const PROBE_JS = `window.khRan = [];
window.khChannel = new BroadcastChannel('kh-ran');
window.khChannel.onmessage = function (e) { window.khRan.push(String(e.data)); };
window.khProbe = function (kind, url, tag) {
  function settle(p) { return p.then(function () { return 'ok'; }, function (e) { return 'refused:' + (e && e.name); }); }
  function prop() { return getComputedStyle(document.documentElement).getPropertyValue('--kh-' + tag).trim() || 'unset'; }
  function el(name, attrs, parent) { return new Promise(function (resolve) { var e = document.createElement(name); for (var a in attrs) e.setAttribute(a, attrs[a]); e.onload = function () { resolve('load'); }; e.onerror = function () { resolve('error'); }; setTimeout(function () { resolve('timeout'); }, 3000); parent.appendChild(e); }); }
  function worker(make) { return new Promise(function (resolve) { var w; try { w = make(); } catch (e) { return resolve('throw:' + e.name); } w.onerror = function () { resolve('error'); }; (w.port || w).onmessage = function (m) { resolve('message:' + m.data); }; setTimeout(function () { resolve('quiet'); }, 1500); }); }
  function later(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }
  if (!window.isSecureContext && (kind === 'sw' || kind === 'paint' || kind === 'audio')) return Promise.resolve('insecure-context');
  switch (kind) {
    case 'classic': case 'csp-classic': return el('script', { src: url }, document.body);
    case 'module': return el('script', { type: 'module', src: url }, document.body);
    case 'dynimport': return settle(import(url));
    case 'worker': return worker(function () { return new Worker(url); });
    case 'modworker': return worker(function () { return new Worker(url, { type: 'module' }); });
    case 'shared': return worker(function () { return new SharedWorker(url); });
    case 'imported': { var abs = new URL(url, location.href).href; var src = "try{importScripts(" + JSON.stringify(abs) + ");postMessage('imported')}catch(e){postMessage('refused:'+e.name)}"; return worker(function () { return new Worker(URL.createObjectURL(new Blob([src], { type: 'text/javascript' }))); }); }
    case 'sw': return settle(navigator.serviceWorker.register(url, { scope: url.indexOf('/v1/') === 0 ? '/v1/' : '/ctl/' }));
    case 'paint': return settle(CSS.paintWorklet.addModule(url));
    case 'audio': return settle(new OfflineAudioContext(1, 1, 44100).audioWorklet.addModule(url));
    case 'link': case 'quirks-link': return el('link', { rel: 'stylesheet', href: url }, document.head).then(function (r) { return later(100).then(function () { return r + ':' + prop(); }); });
    case 'atimport': { var s = document.createElement('style'); s.textContent = '@import url("' + url + '");'; document.head.appendChild(s); return later(800).then(prop); }
    case 'cssmodule': return settle(import(url, { with: { type: 'css' } }));
    case 'wasm': return settle(WebAssembly.compileStreaming(fetch(url)));
    case 'json': return import(url, { with: { type: 'json' } }).then(function (m) { return JSON.stringify(m.default); }, function (e) { return 'refused:' + e.name; });
    case 'text': return fetch(url).then(function (r) { return r.status + ' ' + r.headers.get('content-type') + ' ' + r.headers.get('x-content-type-options'); });
    case 'img': return new Promise(function (resolve) { var i = new Image(); i.onload = function () { resolve('decoded:' + i.naturalWidth); }; i.onerror = function () { resolve('error'); }; i.src = url; });
    case 'media': return new Promise(function (resolve) { var a = document.createElement('audio'); a.preload = 'auto'; a.onloadedmetadata = function () { resolve('metadata:' + Math.round(a.duration)); }; a.onerror = function () { resolve('error'); }; a.src = url; document.body.appendChild(a); });
  }
  return Promise.resolve('unknown kind');
};`;
    const page = (body: string, doctype = true) => `${doctype ? '<!doctype html>' : ''}<html><head><meta charset="utf-8"><title>Label</title><script src="/probe.js"></script></head><body>${body}</body></html>`;
    const control = objects('app');
    const probeApp = await startTestApp({
      '/probe.js': (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/javascript' });
        res.end(PROBE_JS);
      },
      '/probe': (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(page('<h1>probe</h1>'));
      },
      '/probe-quirks': (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(page('<h1>quirks</h1>', false));
      },
      '/probe-csp': (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': "script-src 'self'; style-src 'self'" });
        res.end(page('<h1>csp</h1>'));
      },
      '/ran': (_req, res) => {
        res.writeHead(204, { 'access-control-allow-origin': '*' });
        res.end();
      },
      ...Object.fromEntries(
        Object.entries(control).map(([file, body]) => [
          `/ctl/${file}`,
          (_req: unknown, res: import('node:http').ServerResponse) => {
            res.writeHead(200, { 'content-type': typeOf(file) });
            res.end(body);
          },
        ]),
      ),
    });
    t.teardown(() => probeApp.close());

    // The real upstreams: nginx with its usual types, redis with companion type keys.
    const nginx = await startNginx(t, '    types { text/javascript js; text/css css; application/wasm wasm; application/json json; image/png png; audio/wav wav; }', {
      ...objects('nginx'),
      'gradient.png': PNG,
      'tone.wav': WAV,
    });
    const redis = await startRedis();
    t.teardown(() => redis.stop());
    const db = await testClient(redis, { name: 'seed-e2e-types' });
    t.teardown(() => db.disconnect());
    for (const [file, body] of Object.entries(objects('redis'))) {
      await db.set(`probe/${file}`, body);
      await db.set(`probe/${file}:type`, typeOf(file));
    }
    // A presign-mode bucket on its own https origin: every object is a script.
    const certs = testCerts();
    const bucket = createHttps({ cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) }, (req, res) => {
      const key = /^\/bucket1\/([\w-]+)\.js/.exec(req.url ?? '')?.[1] ?? 'none';
      res.writeHead(200, { 'content-type': 'text/javascript', 'access-control-allow-origin': '*' });
      res.end(js(`bucket-${key}`));
    });
    await new Promise<void>((r) => bucket.listen(0, '127.0.0.1', r));
    t.teardown(() => new Promise<void>((r) => bucket.close(() => r())));
    const providers = `providers:
  - { name: web, kind: http, match: "https://web.corp/", allowPrivateNetworks: true, baseUrl: "${nginx.origin}/" }
  - name: blobs
    kind: redis
    match: redis://0/
    contentTypeKey: "{key}:type"
    redis:
${redis.yaml('      ', 'commandTimeout: 10s')}
  - name: bucket
    kind: s3
    mode: presign
    match: s3://bucket1/
    endpoint: https://127.0.0.1:${(bucket.address() as AddressInfo).port}
    pathStyle: true
    region: us-east-1
    credentials: { accessKeyId: AKIDEXAMPLE, secretAccessKey: "\${env:S3_SECRET}" }
    buckets: [{ name: bucket1 }]
app:
  upstream: ${probeApp.origin}
`;
    const env = { env: { S3_SECRET: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' } };
    // https://localhost: browsers send Fetch metadata. http://kh-plain.test: they send none,
    // so only the judged type stands between the object and the page.
    const secure = await startKeyhole(baseYaml(providers), env);
    t.teardown(() => secure.close());
    const plain = await startKeyhole(baseYaml(providers).replace(/^ {2}tls: .*\n/m, '  insecurePlainHttp: true\n'), env);
    t.teardown(() => plain.close());

    interface Verdict {
      pass: string;
      source: string;
      kind: string;
      result: string;
      ran: boolean;
    }
    const verdicts: Verdict[] = [];
    const probe = (p: Page, kind: string, url: string, tag: string) => p.evaluate(([k, u, g]) => (window as unknown as { khProbe(k: string, u: string, g: string): Promise<string> }).khProbe(k, u, g), [kind, url, tag] as const);

    for (const [pass, k, origin] of [
      ['https', secure, secure.base],
      ['plain-http', plain, `http://kh-plain.test:${new URL(plain.base).port}`],
    ] as const) {
      const token = await k.token({ sub: 'annotator-1', scope: ['https://web.corp/', 'redis://0/', 's3://bucket1/'] });
      const urlFor = (source: string, file: string) =>
        source === 'app' ? `/ctl/${file}` : dataUrl(source === 'nginx' ? `https://web.corp/${file}` : `redis://0/probe/${file}`, token);
      const std = await context.newPage();
      await std.goto(`${origin}/probe`);
      const quirks = await context.newPage();
      await quirks.goto(`${origin}/probe-quirks`);
      t.equal(await quirks.evaluate(() => document.compatMode), 'BackCompat', `${pass}: the quirks page is in quirks mode`);
      const cspPage = await context.newPage();
      await cspPage.goto(`${origin}/probe-csp`);
      const results: { source: string; kind: string; result: string }[] = [];
      for (const source of ['app', 'nginx', 'redis']) {
        for (const kind of [...JS_KINDS, ...CSS_KINDS, 'wasm']) {
          const file = kind === 'wasm' ? 'probe.wasm' : `${kind}.${JS_KINDS.includes(kind) ? 'js' : 'css'}`;
          const where = kind === 'quirks-link' ? quirks : kind === 'csp-classic' ? cspPage : std;
          results.push({ source, kind, result: await probe(where, kind, urlFor(source, file), `${source}-${kind}`) });
        }
      }
      // Presign mode: the script is the bucket's, on the bucket's origin, after a redirect.
      const presigned = (key: string) => dataUrl(`s3://bucket1/${key}.js`, token);
      results.push({ source: 'presign', kind: 'classic', result: await probe(std, 'classic', presigned('classic'), 'none') });
      results.push({ source: 'presign', kind: 'csp-classic', result: await probe(cspPage, 'csp-classic', presigned('csp-classic'), 'none') });
      await std.waitForTimeout(800); // the reports of whatever ran
      const hits = probeApp.requests.filter((r) => r.url.startsWith('/ran?')).map((r) => new URL(r.url, 'http://x').searchParams);
      const broadcast = new Set<string>();
      for (const p of [std, quirks, cspPage]) for (const tag of await p.evaluate(() => (window as unknown as { khRan: string[] }).khRan)) broadcast.add(tag);
      const reported = (tag: string) => broadcast.has(tag) || hits.some((h) => h.get('tag') === tag && h.get('origin') === origin);
      for (const { source, kind, result } of results) {
        if (result === 'insecure-context') continue;
        const tag = source === 'presign' ? `bucket-${kind}` : `${source}-${kind}`;
        const ran = /^(ok|message:ran)$/.test(result) || /applied$/.test(result) || reported(tag);
        verdicts.push({ pass, source, kind, result, ran });
      }

      // Data still works beside it: an image, a sound, JSON (fetch and JSON module), the text of a script.
      const png = await probe(std, 'img', urlFor('nginx', 'gradient.png'), '');
      t.equal(png, `decoded:${PNG_SIZE.w}`, `${pass}: <img> decodes a PNG from nginx`);
      t.equal(await probe(std, 'media', urlFor('nginx', 'tone.wav'), ''), 'metadata:3', `${pass}: <audio> loads a WAV from nginx`);
      for (const source of ['nginx', 'redis']) {
        t.equal(await probe(std, 'json', urlFor(source, 'data.json'), ''), '{"labels":[1,2]}', `${pass}: a JSON module from ${source} imports`);
        t.equal(await probe(std, 'text', urlFor(source, 'classic.js'), ''), '200 text/plain nosniff', `${pass}: fetch() of a script from ${source} reads it as text`);
      }
      if (pass === 'https') {
        await std.evaluate(() => navigator.serviceWorker.getRegistrations().then((rs) => Promise.all(rs.map((r) => r.unregister()))));
        // Every load the browser announced as running was refused before any upstream.
        const refused = k.audits().filter((a) => a.reason === 'data_destination_refused');
        t.equal(refused.length, 2 * (JS_KINDS.length + CSS_KINDS.length) + 2, `${pass}: every script-like load (nginx, redis, presign) was refused by its Sec-Fetch-Dest`);
      } else {
        t.same(k.audits().filter((a) => a.reason === 'data_destination_refused'), [], `${pass}: no Fetch metadata here, nothing refused by it: the judged type alone held`);
      }
      await std.close();
      await quirks.close();
      await cspPage.close();
    }

    const table = verdicts.map((v) => `${v.pass.padEnd(10)} ${v.source.padEnd(7)} ${v.kind.padEnd(11)} ${v.ran ? 'RAN' : 'inert'}  ${v.result}`).join('\n');
    writeFileSync(join(ARTIFACTS, 'subresource-loads.txt'), `${table}\n`);
    t.comment(`\n${table}`);
    for (const v of verdicts) {
      const name = `${v.pass} ${v.source} ${v.kind}: ${v.result}`;
      if (v.source === 'app') {
        // The control: the same objects, served by the app with their real types, do run.
        t.ok(v.ran, `${name}: the app's own object runs (the probe sees a run)`);
      } else if (v.source === 'presign' && v.pass === 'plain-http' && v.kind === 'classic') {
        // No Fetch metadata, no CSP: the redirect is followed and the bucket's script runs
        // in the page, as any injected cross-origin <script> would (threat-model.md).
        t.ok(v.ran, `${name}: without the app's CSP, the redirected script runs (documented)`);
      } else {
        t.notOk(v.ran, `${name}: does not run or apply`);
      }
    }
    t.ok(verdicts.filter((v) => v.pass === 'https').some((v) => v.kind === 'sw'), 'service workers were tried');
  });
}
