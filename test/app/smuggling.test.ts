// Request smuggling through the app proxy, with raw TLS sockets: every ambiguous framing is
// answered 400 (or the connection is closed) and the test app's raw byte log proves that
// nothing of it — neither the request nor the request hidden in its body — was forwarded.
// Legitimate chunked POST, DELETE and OPTIONS bodies arrive intact (CVE-2026-29057 case).
import t from 'tap';
import { baseYaml, startKeyhole, type Running } from '../helpers/keyhole.ts';
import { exchange, startTestApp, type TestApp } from './test-app.ts';

let app: TestApp;
let k: Running;

t.before(async () => {
  app = await startTestApp();
  k = await startKeyhole(
    baseYaml(`providers:
  - { name: samples, kind: local, match: "local://samples/", root: ${process.cwd()}/samples }
app:
  upstream: ${app.origin}
`),
  );
});
t.teardown(async () => {
  await k.close();
  await app.close();
});

const smuggled = (n: string) => `GET /smuggled-${n} HTTP/1.1\r\nHost: localhost\r\n\r\n`;

// [name, raw request, who refuses it]
const AMBIGUOUS: [string, string, 'node' | 'keyhole'][] = [
  ['cl-te', `POST /case-cl-te HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled('cl-te')}`, 'node'],
  ['te-cl', `POST /case-te-cl HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n${smuggled('te-cl')}`, 'node'],
  ['dup-cl-same', `POST /case-dup-cl-same HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd${smuggled('dup-cl-same')}`, 'node'],
  ['dup-cl-diff', `POST /case-dup-cl-diff HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nContent-Length: 50\r\n\r\nabcd${smuggled('dup-cl-diff')}`, 'node'],
  ['cl-list', `POST /case-cl-list HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4, 4\r\n\r\nabcd${smuggled('cl-list')}`, 'node'],
  ['cl-plus', `POST /case-cl-plus HTTP/1.1\r\nHost: localhost\r\nContent-Length: +4\r\n\r\nabcd${smuggled('cl-plus')}`, 'node'],
  ['te-xchunked', `POST /case-te-xchunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${smuggled('te-xchunked')}`, 'node'],
  ['te-chunked-identity', `POST /case-te-ci HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled('te-ci')}`, 'node'],
  ['te-twice', `POST /case-te-twice HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n${smuggled('te-twice')}`, 'node'],
  ['te-space-colon', `POST /case-te-sp HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggled('te-sp')}`, 'node'],
  ['te-obs-fold', `POST /case-te-fold HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n${smuggled('te-fold')}`, 'node'],
  ['te-vtab', `POST /case-te-vtab HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n${smuggled('te-vtab')}`, 'node'],
  ['bare-lf', `POST /case-bare-lf HTTP/1.1\nHost: localhost\nContent-Length: 4\n\nabcd${smuggled('bare-lf')}`, 'node'],
  ['chunk-size-junk', `POST /case-chunk-junk HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n4 x\r\nabcd\r\n0\r\n\r\n${smuggled('chunk-junk')}`, 'node'],
  // What Node's parser lets through, refused by Keyhole:
  ['te-identity-chunked', `POST /case-te-ic HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: identity, chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n${smuggled('te-ic')}`, 'keyhole'],
  ['te-gzip-chunked', `POST /case-te-gz HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n${smuggled('te-gz')}`, 'keyhole'],
  ['te-empty-with-cl', `POST /case-te-empty HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding:\r\nContent-Length: 4\r\n\r\nabcd${smuggled('te-empty')}`, 'keyhole'],
  ['te-http10', `POST /case-te-10 HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n${smuggled('te-10')}`, 'keyhole'],
  ['te-delete-gzip', `DELETE /case-te-del-gz HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n${smuggled('te-del-gz')}`, 'keyhole'],
];

t.test('ambiguous framing: answered 400 or closed, and nothing reaches the app', async (t) => {
  for (const [name, raw, by] of AMBIGUOUS) {
    const answer = await exchange(k, raw);
    const status = answer.split('\r\n')[0] ?? '';
    t.ok(answer === '' || status.startsWith('HTTP/1.1 400'), `${name}: 400 or closed (got ${JSON.stringify(status)})`);
    // Leftover bytes may be parsed as a next request: that one is refused (400) too.
    const statuses = answer.match(/HTTP\/1\.1 \d+/g) ?? [];
    t.ok(statuses.every((st) => st === 'HTTP/1.1 400'), `${name}: every answer is a 400 (${statuses.join(', ')})`);
    // Node's parser lets these through: Keyhole's own checks answer, with a reason code.
    if (by === 'keyhole') t.match(answer, /"error":"(request_framing|bad_request)"/, `${name}: refused by Keyhole's own check`);
  }
  // A legitimate request afterwards proves the app listener was up and reachable all along.
  const marker = await exchange(k, 'GET /marker HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  t.match(marker, /^HTTP\/1\.1 200/);
  const raw = app.rawText();
  t.notMatch(raw, /case-|smuggled-/, 'the app received no byte of any ambiguous request');
  t.same(
    app.requests.map((r) => r.url),
    ['/marker'],
    'the app parsed exactly one request: the marker',
  );
});

t.test('legitimate chunked bodies arrive intact, whatever the method', async (t) => {
  const before = app.requests.length;
  const cases: [string, string][] = [
    ['POST', '/chunked-post'],
    ['DELETE', '/chunked-delete'],
    ['OPTIONS', '/chunked-options'],
    ['PUT', '/chunked-put'],
  ];
  for (const [method, path] of cases) {
    const answer = await exchange(
      k,
      `${method} ${path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n` +
        `5\r\nhello\r\n7;ext=1\r\n, world\r\n1\r\n!\r\n0\r\n\r\n`,
    );
    t.match(answer, /^HTTP\/1\.1 200/, `${method}: answered by the app`);

  }
  const got = app.requests.slice(before);
  t.equal(got.length, cases.length);
  for (const [i, [method, path]] of cases.entries()) {
    const r = got.find((g) => g.url === path)!;
    t.ok(r, `${method} reached the app (${i})`);
    t.equal(r.method, method);
    t.equal(r.body.toString(), 'hello, world!', `${method}: body intact, not rewritten to Content-Length: 0`);
    t.equal(r.headers['transfer-encoding'], 'chunked', `${method}: still chunked towards the app`);
    t.equal(r.headers['content-length'], undefined, `${method}: no Content-Length invented`);
  }
  const raw = app.rawText();
  t.match(raw, /DELETE \/chunked-delete HTTP\/1\.1\r\n[\s\S]*?transfer-encoding: chunked\r\n[\s\S]*?\r\n\r\n/i, 'the raw DELETE head says chunked');
});

t.test('a Content-Length body keeps its length; leading zeros are normalised', async (t) => {
  const answer = await exchange(k, 'POST /cl-post HTTP/1.1\r\nHost: localhost\r\nContent-Length: 005\r\nConnection: close\r\n\r\nhello');
  t.match(answer, /^HTTP\/1\.1 200/);
  const r = app.requests.find((g) => g.url === '/cl-post')!;
  t.equal(r.body.toString(), 'hello');
  t.equal(r.headers['content-length'], '5');
  t.equal(r.headers['transfer-encoding'], undefined);
  const del = await exchange(k, 'DELETE /cl-delete HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz');
  t.match(del, /^HTTP\/1\.1 200/);
  t.equal(app.requests.find((g) => g.url === '/cl-delete')!.body.toString(), 'xyz', 'a DELETE body with Content-Length arrives');
});

t.test('a second request pipelined behind a legitimate one is parsed by Keyhole, not smuggled', async (t) => {
  const answer = await exchange(
    k,
    'POST /pipe-1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nabcd' + 'GET /pipe-2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
  );
  t.equal((answer.match(/HTTP\/1\.1 200/g) ?? []).length, 2, 'two answers');
  const one = app.requests.find((r) => r.url === '/pipe-1')!;
  t.equal(one.body.toString(), 'abcd');
  t.ok(app.requests.find((r) => r.url === '/pipe-2'), 'the second request is its own request');
});
