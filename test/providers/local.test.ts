// The local provider through a real Keyhole: confinement (traversal in every encoding,
// symlink escape, NUL, absolute paths), and Range / ETag / Last-Modified / conditionals.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, symlinkSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditFor, baseYaml, dataUrl, filesProviderYaml, type Running, startKeyhole, writeFiles } from '../helpers/keyhole.ts';

const base = mkdtempSync(join(tmpdir(), 'keyhole-local-'));
const root = join(base, 'root');
const outside = join(base, 'outside');
const digits = Buffer.from('0123456789'.repeat(10)); // 100 bytes
writeFiles(root, {
  'digits.bin': digits,
  'sub/note.txt': 'note',
  'page.html': '<script>alert(1)</script>',
  'pic.svg': '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
  'data.xml': '<a/>',
  'empty.txt': '',
  'a b%.txt': 'odd name',
});
writeFiles(outside, { 'secret.txt': 'SECRET OUTSIDE' });
symlinkSync(join(outside, 'secret.txt'), join(root, 'escape.txt'));
symlinkSync(outside, join(root, 'escape-dir'));
symlinkSync(join(root, 'sub', 'note.txt'), join(root, 'inside-link.txt'));
execFileSync('mkfifo', [join(root, 'fifo')]);

const yaml = baseYaml(filesProviderYaml(root));

async function setup(t: Test): Promise<{ k: Running; get: (uri: string, h?: Record<string, string>, m?: 'GET' | 'HEAD') => ReturnType<Running['get']> }> {
  const k = await startKeyhole(yaml);
  t.teardown(() => k.close());
  const token = await k.token({ scope: ['local://files/'] });
  return { k, get: (uri, h = {}, m = 'GET') => k.get(dataUrl(uri), { authorization: `Bearer ${token}`, ...h }, m) };
}

t.test('confinement', async (t) => {
  const { k, get } = await setup(t);
  const cases: [string, number, string][] = [
    ['local://files/../outside/secret.txt', 400, 'uri_traversal'],
    ['local://files/sub/../../outside/secret.txt', 400, 'uri_traversal'],
    ['local://files/%2e%2e/outside/secret.txt', 400, 'uri_traversal'],
    ['local://files/%2E%2E%2Foutside%2Fsecret.txt', 400, 'uri_traversal'],
    ['local://files/sub%2f..%2f..%2foutside/secret.txt', 400, 'uri_traversal'],
    ['local://files/..%5coutside%5csecret.txt', 400, 'uri_forbidden_char'],
    ['local://files/%252e%252e%252foutside/secret.txt', 400, 'uri_double_encoded'],
    ['local://files/digits.bin%00.txt', 400, 'uri_forbidden_char'],
    ['local://files//etc/passwd', 400, 'uri_empty_segment'],
    ['local:///etc/passwd', 403, 'no_provider'],
    ['/etc/passwd', 400, 'uri_invalid'],
    ['file:///etc/passwd', 403, 'no_provider'],
    ['local://files/escape.txt', 404, 'not_found'],
    ['local://files/escape-dir/secret.txt', 404, 'not_found'],
    ['local://files/sub', 404, 'not_found'],
    ['local://files/', 400, 'uri_folder'],
    ['local://files/sub/', 400, 'uri_folder'],
    ['local://files/fifo', 404, 'not_found'],
    ['local://files/missing.txt', 404, 'not_found'],
  ];
  for (const [uri, status, reason] of cases) {
    const res = await get(uri);
    t.equal(res.status, status, `${uri}: ${status}`);
    t.equal(JSON.parse(res.body.toString()).error, reason, `${uri}: ${reason}`);
    t.notOk(res.body.toString().includes('SECRET'), `${uri}: nothing from outside the root`);
  }
  const escape = await get('local://files/escape.txt');
  t.match(await auditFor(k, escape.headers['x-request-id'] as string), { reason: 'not_found', detail: 'resolved outside the root' });
  const inside = await get('local://files/inside-link.txt');
  t.equal(inside.status, 200, 'a symlink that stays inside the root is served');
  t.equal(inside.body.toString(), 'note');
  const odd = await get(`local://files/${encodeURIComponent('a b%.txt')}`);
  t.equal(odd.status, 200, 'names with spaces and % are served');
  t.equal(odd.body.toString(), 'odd name');
});

t.test('Range, ETag, Last-Modified, conditionals', async (t) => {
  const { k, get } = await setup(t);
  const uri = 'local://files/digits.bin';
  const full = await get(uri);
  t.equal(full.status, 200);
  t.same(full.body, digits);
  t.equal(full.headers['accept-ranges'], 'bytes');
  t.equal(full.headers['content-length'], '100');
  t.equal(full.headers['x-content-type-options'], 'nosniff');
  t.equal(full.headers['cache-control'], 'private');
  const etag = full.headers.etag as string;
  const lastModified = full.headers['last-modified'] as string;
  t.match(etag, /^"[0-9a-f]+-[0-9a-f]+"$/);
  t.equal(lastModified, statSync(join(root, 'digits.bin')).mtime.toUTCString());

  const r = async (h: Record<string, string>, m: 'GET' | 'HEAD' = 'GET') => get(uri, h, m);
  let res = await r({ range: 'bytes=10-19' });
  t.equal(res.status, 206);
  t.equal(res.headers['content-range'], 'bytes 10-19/100');
  t.equal(res.body.toString(), '0123456789');
  res = await r({ range: 'bytes=-5' });
  t.equal(res.headers['content-range'], 'bytes 95-99/100');
  t.equal(res.body.toString(), '56789');
  res = await r({ range: 'bytes=90-' });
  t.equal(res.headers['content-range'], 'bytes 90-99/100');
  res = await r({ range: 'bytes=95-500' });
  t.equal(res.headers['content-range'], 'bytes 95-99/100', 'end clamped');
  res = await r({ range: 'bytes=100-' });
  t.equal(res.status, 416);
  t.equal(res.headers['content-range'], 'bytes */100');
  t.match(await auditFor(k, res.headers['x-request-id'] as string), { reason: 'range_not_satisfiable', decision: 'allow' });
  res = await r({ range: 'bytes=0-1,5-6' });
  t.equal(res.status, 200, 'multi-range: full body');
  t.equal(res.body.length, 100);
  res = await r({ range: 'items=0-1' });
  t.equal(res.status, 200, 'unknown unit ignored');
  res = await r({ range: 'bytes=0-9' }, 'HEAD');
  t.equal(res.status, 206);
  t.equal(res.headers['content-length'], '10');
  t.equal(res.body.length, 0);

  res = await r({ 'if-none-match': etag });
  t.equal(res.status, 304);
  t.equal(res.body.length, 0);
  t.equal(res.headers.etag, etag);
  res = await r({ 'if-none-match': `"other", W/${etag}` });
  t.equal(res.status, 304, 'weak comparison in a list');
  res = await r({ 'if-none-match': '"other"' });
  t.equal(res.status, 200);
  res = await r({ 'if-modified-since': lastModified });
  t.equal(res.status, 304);
  res = await r({ 'if-modified-since': new Date(Date.parse(lastModified) - 60_000).toUTCString() });
  t.equal(res.status, 200);
  res = await r({ 'if-none-match': '"other"', 'if-modified-since': lastModified });
  t.equal(res.status, 200, 'If-None-Match wins over If-Modified-Since');

  res = await r({ range: 'bytes=0-4', 'if-range': etag });
  t.equal(res.status, 206, 'If-Range with the current ETag');
  res = await r({ range: 'bytes=0-4', 'if-range': '"stale"' });
  t.equal(res.status, 200, 'If-Range with a stale ETag: whole object');
  t.equal(res.body.length, 100);
  res = await r({ range: 'bytes=0-4', 'if-range': `W/${etag}` });
  t.equal(res.status, 200, 'a weak validator never satisfies If-Range');
  res = await r({ range: 'bytes=0-4', 'if-range': lastModified });
  t.equal(res.status, 206, 'If-Range with the Last-Modified date');
  res = await r({ range: 'bytes=0-4', 'if-range': 'Mon, 01 Jan 2001 00:00:00 GMT' });
  t.equal(res.status, 200);

  const empty = await get('local://files/empty.txt');
  t.equal(empty.status, 200);
  t.equal(empty.headers['content-length'], '0');
  const emptyRange = await get('local://files/empty.txt', { range: 'bytes=0-' });
  t.equal(emptyRange.status, 416);
});

t.test('content types: one judged type, nosniff and the CSP sandbox everywhere', async (t) => {
  const { get } = await setup(t);
  for (const [file, type] of [
    ['page.html', 'text/html;charset=utf-8'],
    ['pic.svg', 'image/svg+xml'],
    ['data.xml', 'application/xml'],
    ['digits.bin', 'application/octet-stream'],
    ['sub/note.txt', 'text/plain;charset=utf-8'],
  ] as const) {
    const res = await get(`local://files/${file}`);
    t.equal(res.headers['content-type'], type, file);
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${file}: nosniff`);
    t.equal(res.headers['content-security-policy'], "sandbox; default-src 'none'", `${file}: sandboxed`);
  }
  const err = await get('local://files/missing.txt');
  t.equal(err.headers['x-content-type-options'], 'nosniff', 'error answers too');
});
