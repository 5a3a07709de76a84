// Range and conditional rules used by providers that serve bytes themselves.
import t from 'tap';
import { notModified, parseRange, rangeStillValid } from '../../src/http/range.ts';
import { relayedResponseFields, forwardedRequestHeaders, SANDBOX } from '../../src/http/data-head.ts';

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
  const fields = (list: string[]) => Object.fromEntries(list.flatMap((v, i) => (i % 2 === 0 ? [[v, list[i + 1]]] : [])));
  const head = ['referrer-policy', 'no-referrer', 'x-request-id', 'r1'];
  const out = relayedResponseFields({ 'content-type': 'image/png', 'set-cookie': ['a=b'], etag: '"1"', 'content-length': '3', location: 'http://x', server: 'x' }, head, 200);
  t.same(out.slice(0, 4), head, "the request's own fields come first");
  t.same(fields(out), {
    'referrer-policy': 'no-referrer',
    'x-request-id': 'r1',
    'content-type': 'image/png',
    etag: '"1"',
    'content-length': '3',
    'cache-control': 'private',
    'x-content-type-options': 'nosniff',
    'content-security-policy': SANDBOX,
  });
  t.equal(out.length, 16, 'each field once');
  const dup = fields(relayedResponseFields({ 'content-type': ['text/plain', 'text/html'] as unknown as string }, [], 200));
  t.equal(dup['content-type'], 'text/html', 'a repeated content-type is read as browsers read it: the last valid one');
  t.equal(dup['content-security-policy'], SANDBOX, 'and sandboxed');
  const list = fields(relayedResponseFields({ 'content-type': 'text/plain, text/html' }, [], 200));
  t.equal(list['content-type'], 'text/html', 'a list: the type a browser would use, alone');
  const svg = fields(relayedResponseFields({ 'content-type': 'image/svg+xml' }, [], 200));
  t.equal(svg['content-security-policy'], SANDBOX, 'active content is sandboxed');
  const notModified = fields(relayedResponseFields({ etag: '"1"' }, [], 304));
  t.notOk('content-type' in notModified, 'a 304 carries no content-type');
  t.equal(notModified['content-security-policy'], SANDBOX, 'but the strict sandbox, whatever was stored before');
  const encoded = fields(relayedResponseFields({ 'content-type': 'text/csv', 'content-encoding': 'gzip', 'content-length': '20' }, [], 200));
  t.equal(encoded['content-encoding'], 'gzip', 'the encoding travels with the bytes');
  const twice = fields(relayedResponseFields({ 'content-encoding': ['gzip', 'br'] as unknown as string, 'content-length': ['1', '2'] as unknown as string }, [], 200));
  t.equal(twice['content-encoding'], 'gzip, br', 'repeated encodings are one list, in order');
  t.notOk('content-length' in twice, 'a repeated length is ambiguous: dropped');
  t.same(forwardedRequestHeaders({ range: 'bytes=0-1', cookie: 'x', authorization: 'Bearer t', 'if-none-match': '"1"' }, { authorization: 'Basic up' }), {
    authorization: 'Basic up',
    range: 'bytes=0-1',
    'if-none-match': '"1"',
  });
});
