// Range and conditional rules used by providers that serve bytes themselves.
import t from 'tap';
import { notModified, parseRange, rangeStillValid } from '../../src/relay/range.js';
import { isActiveContent, relayedResponseFields, forwardedRequestHeaders } from '../../src/relay/headers.js';

t.test('parseRange', async (t) => {
  t.same(parseRange(undefined, 10), { kind: 'full' });
  t.same(parseRange('bytes=0-4', 10), { kind: 'partial', start: 0, end: 4 });
  t.same(parseRange('bytes=5-', 10), { kind: 'partial', start: 5, end: 9 });
  t.same(parseRange('bytes=-3', 10), { kind: 'partial', start: 7, end: 9 });
  t.same(parseRange('bytes=-30', 10), { kind: 'partial', start: 0, end: 9 });
  t.same(parseRange('bytes=8-100', 10), { kind: 'partial', start: 8, end: 9 });
  t.same(parseRange('bytes=10-', 10), { kind: 'unsatisfiable' });
  t.same(parseRange('bytes=-0', 10), { kind: 'unsatisfiable' });
  t.same(parseRange('bytes=-5', 0), { kind: 'unsatisfiable' });
  t.same(parseRange('bytes=5-2', 10), { kind: 'full' }, 'inverted: ignored');
  t.same(parseRange('bytes=-', 10), { kind: 'full' });
  t.same(parseRange('bytes=0-1,3-4', 10), { kind: 'full' });
  t.same(parseRange('bytes=9999999999999999-', 10), { kind: 'full' }, 'absurd numbers ignored');
  t.same(parseRange(' bytes=1-2 ', 10), { kind: 'partial', start: 1, end: 2 });
});

t.test('conditionals', async (t) => {
  const v = { etag: '"abc"', lastModified: new Date('2026-01-01T00:00:00Z') };
  t.ok(notModified({ 'if-none-match': '"abc"' }, v));
  t.ok(notModified({ 'if-none-match': 'W/"abc"' }, v));
  t.ok(notModified({ 'if-none-match': '*' }, v));
  t.notOk(notModified({ 'if-none-match': '"x"', 'if-modified-since': 'Thu, 01 Jan 2026 00:00:00 GMT' }, v));
  t.ok(notModified({ 'if-modified-since': 'Thu, 01 Jan 2026 00:00:00 GMT' }, v));
  t.notOk(notModified({ 'if-modified-since': 'Wed, 31 Dec 2025 00:00:00 GMT' }, v));
  t.notOk(notModified({ 'if-modified-since': 'garbage' }, v));
  t.notOk(notModified({}, v));
  t.ok(rangeStillValid({}, v));
  t.ok(rangeStillValid({ 'if-range': '"abc"' }, v));
  t.notOk(rangeStillValid({ 'if-range': 'W/"abc"' }, v));
  t.notOk(rangeStillValid({ 'if-range': '"x"' }, v));
  t.ok(rangeStillValid({ 'if-range': 'Thu, 01 Jan 2026 00:00:00 GMT' }, v));
  t.notOk(rangeStillValid({ 'if-range': 'nonsense' }, v));
});

t.test('header rules', async (t) => {
  for (const ct of ['text/html', 'TEXT/HTML; charset=utf-8', 'application/xhtml+xml', 'image/svg+xml', 'text/xml', 'application/xml', 'application/rss+xml', 'application/javascript', 'text/javascript', 'application/pdf']) {
    t.ok(isActiveContent(ct), `${ct} is active`);
  }
  for (const ct of [undefined, 'image/png', 'audio/wav', 'text/plain', 'application/json', 'video/mp4']) t.notOk(isActiveContent(ct), `${ct} is passive`);
  const fields = (list: string[]) => Object.fromEntries(list.flatMap((v, i) => (i % 2 === 0 ? [[v, list[i + 1]]] : [])));
  const head = ['referrer-policy', 'no-referrer', 'x-request-id', 'r1'];
  const out = relayedResponseFields({ 'content-type': 'image/png', 'set-cookie': ['a=b'], etag: '"1"', 'content-length': '3', location: 'http://x', server: 'x' }, head, 200);
  t.same(out.slice(0, 4), head, "the request's own fields come first");
  t.same(fields(out), { 'referrer-policy': 'no-referrer', 'x-request-id': 'r1', 'content-type': 'image/png', etag: '"1"', 'content-length': '3', 'cache-control': 'private', 'x-content-type-options': 'nosniff' });
  t.equal(out.length, 14, 'each field once');
  const dup = fields(relayedResponseFields({ 'content-type': ['text/html', 'image/png'] as unknown as string }, [], 200));
  t.equal(dup['content-type'], 'application/octet-stream', 'a repeated content-type is dropped, not guessed');
  t.notOk('content-security-policy' in dup, 'the dropped type was never trusted as active content either');
  const svg = fields(relayedResponseFields({ 'content-type': 'image/svg+xml' }, [], 200));
  t.equal(svg['content-security-policy'], "sandbox; default-src 'none'", 'active content is sandboxed');
  const notModified = fields(relayedResponseFields({ 'content-type': 'image/svg+xml', etag: '"1"' }, [], 304));
  t.notOk('content-type' in notModified, 'a 304 carries no content-type');
  t.equal(notModified['content-security-policy'], "sandbox; default-src 'none'", 'but keeps the sandbox');
  t.same(forwardedRequestHeaders({ range: 'bytes=0-1', cookie: 'x', authorization: 'Bearer t', 'if-none-match': '"1"' }, { authorization: 'Basic up' }), {
    authorization: 'Basic up',
    range: 'bytes=0-1',
    'if-none-match': '"1"',
  });
});
