// Whatever type an upstream sends, a data answer carries ONE Content-Type (the type a
// browser would read from the upstream's, Fetch's last-valid-wins) and the CSP sandbox:
// through the http relay from an upstream sending each hostile field as given, from a real
// nginx misconfigured two ways, from a real S3 server (object metadata and the provider's
// own response override, proxy mode), and from the local and redis providers. Types that
// run or apply as a subresource (scripts, styles, WebAssembly) come out as text/plain.
import t, { type Test as Tap } from 'tap';
import { mkdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dataUrl, filesProviderYaml, keyholeWith } from '../helpers/keyhole.ts';
import { httpProviderItem, keyholeInFront } from '../helpers/upstream.ts';
import { MEDIA_SANDBOX, SANDBOX } from '../../src/http/data-head.ts';
import { startNginx } from '../fixtures/nginx.ts';
import { startS3rver, S3RVER_ENV } from '../fixtures/cloud/s3rver.ts';
import { redisProviderItem, startRedis, testClient } from '../helpers/redis.ts';

const BODY = '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>';

/** [Content-Type lines as the upstream sends them, the one type Keyhole must send] */
const HOSTILE: [string[], string][] = [
  [['text/plain, text/html'], 'text/html'],
  [['image/png, image/svg+xml'], 'image/svg+xml'],
  [['application/octet-stream, text/html'], 'text/html'],
  [['TEXT/PLAIN, TEXT/HTML'], 'text/html'],
  [['text/plain,text/html'], 'text/html'],
  [['text/html;charset=utf-8, text/plain'], 'text/plain'],
  [['text/plain; charset=utf-8, text/html; charset=utf-8'], 'text/html;charset=utf-8'],
  [['text/html;charset=gbk, text/html'], 'text/html;charset=gbk'],
  [['text/plain;x=", text/html"'], 'text/plain'],
  [['text/plain;x="a, text/html'], 'text/plain'],
  [["text/plain;x=', text/html"], 'text/html'],
  [['*/*'], 'application/octet-stream'],
  [['text/plain, */*'], 'text/plain'],
  [['*/*, text/html'], 'text/html'],
  [[''], 'application/octet-stream'],
  [[], 'application/octet-stream'],
  [['bogus, text/html'], 'text/html'],
  [['text/html, bogus'], 'text/html'],
  [['video/mp4, text/html'], 'text/html'],
  [['text/html, video/mp4'], 'video/mp4'],
  [['application/xhtml+xml'], 'application/xhtml+xml'],
  [['text/xsl'], 'text/plain'],
  [['text/javascript'], 'text/plain'],
  [['application/javascript; charset=utf-8'], 'text/plain;charset=utf-8'],
  [['text/css'], 'text/plain'],
  [['application/wasm'], 'text/plain'],
  [['text/html, text/javascript'], 'text/plain'],
  [['image/png', 'application/x-javascript'], 'text/plain'],
  [['multipart/x-mixed-replace;boundary=kh'], 'multipart/x-mixed-replace;boundary=kh'],
  [['text/plain', 'text/html'], 'text/html'],
  [['image/png', 'image/svg+xml'], 'image/svg+xml'],
  [['text/html', ''], 'text/html'],
  [['text/plain;charset=utf-8', 'text/plain'], 'text/plain;charset=utf-8'],
];

const cspFor = (type: string) => (/^(audio|video)\/[^+]+$/.test(type.split(';')[0]!) ? MEDIA_SANDBOX : SANDBOX);

function checkAnswer(t: Tap, res: { status: number; headers: Record<string, string | string[] | undefined> }, type: string, label: string): void {
  t.equal(res.status, 200, `${label}: status`);
  t.equal(res.headers['content-type'], type, `${label}: one type, the one a browser would read`);
  t.equal(res.headers['content-security-policy'], cspFor(type), `${label}: sandboxed`);
  t.equal(res.headers['x-content-type-options'], 'nosniff', `${label}: nosniff`);
}

t.test('the http relay: each hostile field, GET and HEAD, and a 304', async (t) => {
  // Node's server writes a flat header list as given: repeated lines stay repeated.
  const upstream: Server = createServer((req, res) => {
    const i = Number(req.url!.slice(1));
    const fields: string[] = [];
    for (const v of HOSTILE[i]![0]) fields.push('content-type', v);
    if (req.headers['if-none-match'] === '"v1"') {
      res.writeHead(304, ['etag', '"v1"']);
      res.end();
      return;
    }
    res.writeHead(200, [...fields, 'etag', '"v1"', 'content-length', String(BODY.length)]);
    res.end(req.method === 'HEAD' ? undefined : BODY);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => upstream.close(() => r())));
  const { k, auth } = await keyholeInFront(t, `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`);
  for (let i = 0; i < HOSTILE.length; i++) {
    const [lines, type] = HOSTILE[i]!;
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await k.get(dataUrl(`https://data.corp/${i}`), auth, method);
      checkAnswer(t, res, type, `${method} ${JSON.stringify(lines)}`);
      t.equal(res.body.toString(), method === 'GET' ? BODY : '', `${method} ${JSON.stringify(lines)}: the body untouched`);
    }
  }
  const revalidated = await k.get(dataUrl('https://data.corp/0'), { ...auth, 'if-none-match': '"v1"' });
  t.equal(revalidated.status, 304);
  t.equal(revalidated.headers['content-type'], undefined, 'a 304 names no type');
  t.equal(revalidated.headers['content-security-policy'], SANDBOX, 'and carries the strict sandbox: an answer stored before keeps none of its own');
});

t.test('a real nginx: a type list as default_type, a second Content-Type from add_header', async (t) => {
  const nginx = await startNginx(`
    location = /list.bin { types {} default_type "text/plain, text/html"; }
    location = /page.txt { add_header Content-Type "text/html"; }
    location = /mixed.txt { add_header Content-Type "TEXT/HTML;charset=utf-8"; }
    location /typed/ { types { text/javascript js; application/javascript mjs; text/css css; application/wasm wasm; } charset utf-8; charset_types text/javascript text/css; }
  `);
  t.teardown(() => nginx.stop());
  for (const f of ['list.bin', 'page.txt', 'mixed.txt']) writeFileSync(join(nginx.root, f), BODY);
  mkdirSync(join(nginx.root, 'typed'));
  for (const f of ['evil.js', 'evil.mjs', 'evil.css', 'evil.wasm']) writeFileSync(join(nginx.root, 'typed', f), BODY);
  const { k, auth } = await keyholeWith(t, `providers:\n${httpProviderItem('web', 'https://web.corp/', `${nginx.origin}/`)}`, ['https://web.corp/']);
  for (const [file, type] of [
    ['list.bin', 'text/html'],
    ['page.txt', 'text/html'],
    ['mixed.txt', 'text/html;charset=utf-8'],
    // nginx's own types for scripts, styles and WebAssembly: served as text that runs nowhere
    ['typed/evil.js', 'text/plain;charset=utf-8'],
    ['typed/evil.mjs', 'text/plain'],
    ['typed/evil.css', 'text/plain;charset=utf-8'],
    ['typed/evil.wasm', 'text/plain'],
  ] as const) {
    const res = await k.get(dataUrl(`https://web.corp/${file}`), auth);
    checkAnswer(t, res, type, `nginx ${file}`);
    t.equal(res.body.toString(), BODY);
  }
});

t.test('a real S3 server, proxy mode: the object’s own type list, and a configured override', async (t) => {
  const s3 = await startS3rver(['bucket1']);
  t.teardown(() => s3.close());
  await s3.put('bucket1', 'files/page.txt', BODY, 'text/plain, text/html');
  await s3.put('bucket1', 'other/pic.png', BODY, 'image/png');
  const provider = (name: string, prefix: string, extra = '') => s3.providerItem({ name, bucket: 'bucket1', match: `s3://bucket1/${prefix}`, prefixes: [prefix], extra });
  const yaml = `providers:\n${provider('files', 'files/')}${provider('other', 'other/', 'response: { contentType: "image/png, image/svg+xml" }')}`;
  const { k, auth } = await keyholeWith(t, yaml, ['s3://bucket1/'], { env: S3RVER_ENV });
  const stored = await k.get(dataUrl('s3://bucket1/files/page.txt'), auth);
  checkAnswer(t, stored, 'text/html', 'S3 object metadata "text/plain, text/html"');
  t.equal(stored.body.toString(), BODY);
  const head = await k.get(dataUrl('s3://bucket1/files/page.txt'), auth, 'HEAD');
  checkAnswer(t, head, 'text/html', 'HEAD of it');
  const overridden = await k.get(dataUrl('s3://bucket1/other/pic.png'), auth);
  checkAnswer(t, overridden, 'image/svg+xml', 'response.contentType override "image/png, image/svg+xml"');
});

t.test('the local provider: types by extension go through the same judgment', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'keyhole-ct-local-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  for (const f of ['a.svg', 'a.html', 'a.wav', 'a.txt', 'a.png', 'a.unknown']) writeFileSync(join(root, f), BODY);
  const { k, auth } = await keyholeWith(t, filesProviderYaml(root), ['local://files/']);
  for (const [file, type] of [
    ['a.svg', 'image/svg+xml'],
    ['a.html', 'text/html;charset=utf-8'],
    ['a.wav', 'audio/wav'],
    ['a.txt', 'text/plain;charset=utf-8'],
    ['a.png', 'image/png'],
    ['a.unknown', 'application/octet-stream'],
  ] as const) {
    checkAnswer(t, await k.get(dataUrl(`local://files/${file}`), auth), type, `local ${file}`);
    checkAnswer(t, await k.get(dataUrl(`local://files/${file}`), auth, 'HEAD'), type, `local HEAD ${file}`);
  }
});

t.test('the redis provider: a stored type goes through the same judgment', async (t) => {
  const r = await startRedis();
  t.teardown(() => r.stop());
  const db = await testClient(r, { name: 'seed-ct' });
  t.teardown(() => db.disconnect());
  const types: Record<string, string | undefined> = {
    'v/html': 'text/html',
    'v/upper': 'TEXT/PLAIN; Charset=UTF-8',
    'v/list': 'text/plain, text/html',
    'v/svg.txt': 'image/svg+xml',
    'v/none.svg': undefined,
    'v/a.js': 'text/javascript',
    'v/sw': 'application/javascript; charset=utf-8',
    'v/s.css': 'text/css',
  };
  for (const [key, type] of Object.entries(types)) {
    await db.set(key, BODY);
    if (type !== undefined) await db.set(`${key}:type`, type);
  }
  const { k, auth } = await keyholeWith(t, `providers:\n${redisProviderItem(r, { extra: 'contentTypeKey: "{key}:type"' })}`, ['redis://0/']);
  for (const [key, type] of [
    ['v/html', 'text/html'],
    ['v/upper', 'text/plain;charset=UTF-8'],
    // not a media type to the provider's own check: it falls back to the key's extension (none)
    ['v/list', 'application/octet-stream'],
    ['v/svg.txt', 'image/svg+xml'],
    ['v/none.svg', 'image/svg+xml'],
    ['v/a.js', 'text/plain'],
    ['v/sw', 'text/plain;charset=utf-8'],
    ['v/s.css', 'text/plain'],
  ] as const) {
    const res = await k.get(dataUrl(`redis://0/${key}`), auth);
    checkAnswer(t, res, type, `redis ${key}`);
    t.equal(res.body.toString(), BODY);
  }
});
