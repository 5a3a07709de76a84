// HTTP/2 on the TLS listener: negotiated by ALPN beside HTTP/1.1, with every property of the
// HTTP/1.1 path (same checks, same header fields, same audit), the app front translating to
// HTTP/1.1 safely (a real WSGI server behind it), and the HTTP/2-specific attacks: pseudo-header
// tricks, `:authority` against Host, connection-specific fields, CONTINUATION floods, rapid
// reset, connections that never send a request and bodies that never end.
import t, { type Test } from 'tap';
import { connect as h2connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { testCerts } from '../helpers/certs.ts';
import { auditFor, baseYaml, dataUrl, filesProviderYaml, startKeyhole, tempFiles, type Running } from '../helpers/keyhole.ts';
import { FLAG, FRAME, frame, headerBlock, RawH2, rstStream } from '../helpers/h2-frames.ts';
import { startGunicorn } from '../helpers/real-servers.ts';

const ca = readFileSync(testCerts().caCert);
const portOf = (k: Running) => Number(new URL(k.base).port);

/** A Keyhole serving local://files/a.txt ("hello"), closed on teardown, and a token for it. */
async function filesKeyhole(t: Test, prefix: string, server?: string): Promise<{ k: Running; token: string }> {
  const dir = tempFiles(prefix, { 'a.txt': 'hello' });
  const k = await startKeyhole(baseYaml(filesProviderYaml(dir), server === undefined ? {} : { server }));
  t.teardown(() => k.close());
  return { k, token: await k.token({ scope: ['local://files/'] }) };
}

/** The pseudo-header fields of a well-formed GET of `path`, for the raw-frame client. */
const getFields = (path: string): [string, string][] => [[':method', 'GET'], [':scheme', 'https'], [':authority', 'localhost'], [':path', path]];

interface H2Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function h2session(k: Running): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = h2connect(k.base, { ca });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

function h2get(s: ClientHttp2Session, path: string, headers: Record<string, string | string[]> = {}, body?: Buffer | Buffer[]): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const method = body === undefined ? (headers[':method'] ?? 'GET') : (headers[':method'] ?? 'POST');
    const req = s.request({ ':path': path, ...headers, ':method': method }, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let head: IncomingHttpHeaders = {};
    req.on('response', (h) => (head = h));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks) }));
    req.on('error', reject);
    if (body !== undefined) {
      for (const part of Array.isArray(body) ? body : [body]) req.write(part);
      req.end();
    }
  });
}

/** Header fields both protocols must send alike: all but the per-request and per-protocol ones. */
function comparable(headers: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || ['date', 'x-request-id', 'connection', 'keep-alive', 'transfer-encoding'].includes(name)) continue;
    out[name] = String(value);
  }
  return out;
}

t.test('ALPN offers h2 and http/1.1; http2: false offers http/1.1 only', async (t) => {
  const dir = tempFiles('h2-alpn-', { 'a.txt': 'hello' });
  for (const http2 of [true, false]) {
    const k = await startKeyhole(baseYaml(filesProviderYaml(dir), { server: `http2: ${http2}` }));
    t.teardown(() => k.close());
    const alpn = await new Promise<string | false | null>((resolve, reject) => {
      const s = tlsConnect({ port: portOf(k), host: '127.0.0.1', servername: 'localhost', ca, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
        resolve(s.alpnProtocol);
        s.destroy();
      });
      s.once('error', reject);
    });
    t.equal(alpn, http2 ? 'h2' : 'http/1.1', `http2: ${http2} → ${alpn}`);
    // A client without ALPN (curl --http1.1, old libraries) gets HTTP/1.1 either way.
    const token = await k.token({ scope: ['local://files/'] });
    const h1 = await k.get(dataUrl('local://files/a.txt', token));
    t.equal(h1.status, 200);
    t.equal(h1.body.toString(), 'hello');
  }
});

t.test('the same answers over HTTP/2 as over HTTP/1.1: header fields, bodies, ranges, refusals, audit', async (t) => {
  const dir = tempFiles('h2-parity-', { 'a.txt': 'hello world', 'img.png': Buffer.alloc(70_000, 7) });
  const k = await startKeyhole(baseYaml(filesProviderYaml(dir)));
  t.teardown(() => k.close());
  const s = await h2session(k);
  t.teardown(() => s.close());
  t.equal(s.alpnProtocol, 'h2');
  const raw = await RawH2.open(portOf(k), ca);
  await raw.until(() => raw.settings().size > 0);
  raw.close();
  t.equal(raw.settings().get(3), 128, 'SETTINGS_MAX_CONCURRENT_STREAMS: 128');
  t.not(raw.settings().get(8), 1, 'no SETTINGS_ENABLE_CONNECT_PROTOCOL: websockets take HTTP/1.1');
  const token = await k.token({ scope: ['local://files/'] });
  const narrow = await k.token({ scope: ['local://files/a.txt'] });
  const cases: [string, string, Record<string, string>][] = [
    ['200', dataUrl('local://files/a.txt', token), {}],
    ['206', dataUrl('local://files/img.png', token), { range: 'bytes=10-19' }],
    ['HEAD', dataUrl('local://files/img.png', token), { ':method': 'HEAD' }],
    ['304', dataUrl('local://files/a.txt', token), {}],
    ['401 no token', dataUrl('local://files/a.txt'), {}],
    ['401 bad token', dataUrl('local://files/a.txt', 'x.y.z'), {}],
    ['403 scope', dataUrl('local://files/img.png', narrow), {}],
    ['400 uri', dataUrl('nope', token), {}],
    ['no provider', dataUrl('local://elsewhere/a.txt', token), {}],
    ['416', dataUrl('local://files/a.txt', token), { range: 'bytes=500-' }],
    ['405', dataUrl('local://files/a.txt', token), { ':method': 'DELETE' }],
    ['404 no app', '/somewhere', {}],
    ['session 405', '/v1/session', {}],
    ['script destination', dataUrl('local://files/a.txt', token), { 'sec-fetch-dest': 'script' }],
  ];
  const first = await k.get(dataUrl('local://files/a.txt', token));
  const etag = String(first.headers.etag);
  for (const [name, path, headers] of cases) {
    const h = name === '304' ? { 'if-none-match': etag } : headers;
    const { ':method': method = 'GET', ...plain } = h;
    const one = await k.get(path, plain, method as 'GET');
    const two = await h2get(s, path, h);
    t.equal(two.status, one.status, `${name}: status ${one.status}`);
    t.same(comparable(two.headers), comparable(one.headers), `${name}: the same header fields`);
    const plainBody = (a: { body: Buffer; headers: Record<string, unknown> }) => a.body.toString('latin1').replaceAll(String(a.headers['x-request-id']), 'ID');
    if (two.headers['content-type']?.startsWith('application/json')) t.match(two.body.toString(), String(two.headers['x-request-id']), `${name}: the header names the body's request id`);
    t.equal(plainBody(two), plainBody(one), `${name}: the same body (but for the request id)`);
    const id = String(two.headers['x-request-id']);
    const audit = await auditFor(k, id).catch(() => undefined);
    if (path.startsWith('/v1/data')) {
      t.equal(audit?.status, two.status, `${name}: one audit event with its status`);
      t.equal(k.audits().filter((a) => a.id === id).length, 1, `${name}: exactly one`);
    }
  }
});

t.test(':authority and Host must name the same host; absolute and asterisk targets are refused', async (t) => {
  const { k, token } = await filesKeyhole(t, 'h2-authority-');
  const path = dataUrl('local://files/a.txt', token);
  const h2 = await RawH2.open(portOf(k), ca);
  t.teardown(() => h2.close());
  const base = (p = path): [string, string][] => [[':method', 'GET'], [':scheme', 'https'], [':path', p]];
  h2.request(1, [...base(), [':authority', 'localhost'], ['host', 'localhost']]);
  h2.request(3, [...base(), [':authority', 'localhost'], ['host', 'evil.example']]);
  h2.request(5, [...base(), ['host', 'localhost']]);
  h2.request(7, base());
  h2.request(9, [...base('https://evil.example/v1/data'), [':authority', 'localhost']]);
  h2.request(11, [[':method', 'OPTIONS'], [':scheme', 'https'], [':path', '*'], [':authority', 'localhost']]);
  h2.request(13, [...base(), [':authority', 'localhost'], ['host', 'localhost'], ['host', 'localhost']]);
  await h2.until(() => [1, 3, 5, 7, 9, 11, 13].every((id) => h2.ended(id)));
  t.equal(h2.statusByte(1), 0x88, 'the same host: 200');
  t.equal(h2.statusByte(3), 0x8c, ':authority localhost, Host evil.example: 400');
  t.equal(h2.statusByte(5), 0x88, 'Host alone (RFC 9113 allows it): 200');
  t.not(h2.statusByte(7), 0x88, 'neither :authority nor Host: not served');
  t.not(h2.statusByte(9), 0x88, 'absolute-form :path: not served');
  t.not(h2.statusByte(11), 0x88, 'asterisk :path: not served');
  t.not(h2.statusByte(13), 0x88, 'two Host fields: not served');
  await h2.until(() => k.audits().length >= 2, 1000);
  t.equal(k.audits().filter((a) => a.status === 200).length, 2, `exactly the two well-formed requests were served: ${JSON.stringify(k.audits().map((a) => a.status))}`);
});

t.test('malformed requests are reset by the HTTP/2 layer before any route runs', async (t) => {
  const { k, token } = await filesKeyhole(t, 'h2-malformed-');
  const ok = getFields(dataUrl('local://files/a.txt', token));
  const cases: [string, [string, string | Buffer][]][] = [
    ['a repeated :path', [...ok, [':path', '/other']]],
    ['an unknown pseudo-header', [...ok, [':proxy', 'evil']]],
    ['a pseudo-header after a regular field', [[':method', 'GET'], [':scheme', 'https'], ['x-a', '1'], [':authority', 'localhost'], [':path', '/']]],
    ['no :path', ok.filter(([n]) => n !== ':path')],
    ['Connection', [...ok, ['connection', 'keep-alive']]],
    ['Transfer-Encoding', [...ok, ['transfer-encoding', 'chunked']]],
    ['Keep-Alive', [...ok, ['keep-alive', 'timeout=5']]],
    ['Upgrade', [...ok, ['upgrade', 'websocket']]],
    ['TE other than trailers', [...ok, ['te', 'gzip']]],
    ['an upper-case field name', [...ok, ['X-Upper', '1']]],
    ['CONNECT', [[':method', 'CONNECT'], [':authority', 'evil.example:443']]],
  ];
  const h2 = await RawH2.open(portOf(k), ca);
  t.teardown(() => h2.close());
  let id = 1;
  const ids: number[] = [];
  for (const [, fields] of cases) {
    h2.request(id, fields);
    ids.push(id);
    id += 2;
  }
  h2.request(id, ok); // a good one last, on the same connection
  await h2.until(() => h2.ended(id) || h2.goaway() !== undefined);
  await h2.until(() => k.audits().length >= 1, 1000);
  // Reset by the HTTP/2 layer, or (CONNECT) 405 by Node.
  for (const [i, [name]] of cases.entries()) t.not(h2.statusByte(ids[i]!), 0x88, `${name}: never served`);
  t.equal(k.audits().length, 1, 'no malformed request reached a route: only the good one');
  // The connection may be closed for them; a new one is served.
  const again = await RawH2.open(portOf(k), ca);
  t.teardown(() => again.close());
  again.request(1, ok);
  await again.until(() => again.outcome(1) !== undefined);
  t.equal(again.statusByte(1), 0x88, 'the server serves the next connection');
});

t.test('a CONTINUATION flood is cut, and the server goes on serving', async (t) => {
  const { k, token } = await filesKeyhole(t, 'h2-continuation-');
  const h2 = await RawH2.open(portOf(k), ca);
  t.teardown(() => h2.close());
  // HEADERS without END_HEADERS, then CONTINUATION frames that never end the block.
  h2.send(frame(FRAME.HEADERS, FLAG.END_STREAM, 1, headerBlock(getFields('/'))));
  const field = headerBlock([['x-flood', 'a'.repeat(1000)]]);
  let sent = 0;
  for (; sent < 20_000 && !h2.closed; sent++) {
    if (!h2.send(frame(FRAME.CONTINUATION, 0, 1, field))) await new Promise((r) => setTimeout(r, 1));
  }
  await h2.until(() => h2.closed || h2.goaway() !== undefined, 5000);
  t.ok(h2.closed || h2.goaway() !== undefined, `the connection is ended (after ${sent} CONTINUATION frames, ${Math.round((sent * field.length) / 1024)} KiB offered)`);
  t.equal(h2.outcome(1), undefined, 'the flooded request is never answered');
  const s = await h2session(k);
  t.teardown(() => s.close());
  const a = await h2get(s, dataUrl('local://files/a.txt', token));
  t.equal(a.status, 200, 'another client is served');
});

t.test('rapid reset: a connection that opens and resets streams in bulk is closed', async (t) => {
  const { k, token } = await filesKeyhole(t, 'h2-reset-');
  const fields = getFields(dataUrl('local://files/a.txt', token));
  const h2 = await RawH2.open(portOf(k), ca);
  t.teardown(() => h2.close());
  const block = headerBlock(fields);
  let stream = 1;
  for (let i = 0; i < 20_000 && !h2.closed; i++, stream += 2) {
    h2.send(Buffer.concat([frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, stream, block), rstStream(stream)]));
    if (i % 500 === 499) await new Promise((r) => setImmediate(r));
  }
  await h2.until(() => h2.closed || h2.goaway() !== undefined, 5000);
  const away = h2.goaway();
  t.ok(h2.closed || away !== undefined, `the connection is ended (GOAWAY code ${away?.code})`);
  t.ok(k.audits().length < 20_000, `not every reset stream ran a request (${k.audits().length} did)`);
  const s = await h2session(k);
  t.teardown(() => s.close());
  t.equal((await h2get(s, dataUrl('local://files/a.txt', token))).status, 200, 'another client is served');
});

t.test('a connection that sends no request, and a body that never ends, are closed by the timeouts', async (t) => {
  const { k, token } = await filesKeyhole(t, 'h2-timeouts-', 'timeouts: { headers: 500ms, request: 1s }');
  const idle = await RawH2.open(portOf(k), ca);
  t.teardown(() => idle.close());
  t.ok(await idle.until(() => idle.closed || idle.goaway() !== undefined, 4000), 'a connection without a request is closed after the headers timeout');

  const slow = await RawH2.open(portOf(k), ca);
  t.teardown(() => slow.close());
  slow.request(1, [[':method', 'POST'], [':scheme', 'https'], [':authority', 'localhost'], [':path', dataUrl('local://files/a.txt', token)]], false);
  slow.send(frame(FRAME.DATA, 0, 1, Buffer.from('a')));
  t.ok(await slow.until(() => slow.outcome(1) !== undefined, 4000), 'a body that never ends: the stream is answered or reset after the request timeout');
});

t.test('drain: open HTTP/2 streams finish, the connection gets GOAWAY, no new stream starts', async (t) => {
  const dir = tempFiles('h2-drain-', { 'a.txt': 'hello' });
  const k = await startKeyhole(baseYaml(filesProviderYaml(dir)));
  const token = await k.token({ scope: ['local://files/'] });
  const s = await h2session(k);
  const goaway = new Promise<void>((r) => s.once('goaway', () => r()));
  t.equal((await h2get(s, dataUrl('local://files/a.txt', token))).status, 200);
  const closed = k.server.close(5000);
  await goaway;
  t.pass('the client was told GOAWAY');
  t.same(await closed, { cut: 0 }, 'nothing was cut');
  s.destroy();
  await k.dispatcher.close();
});

const ECHO_APP = `
import json, hashlib
def application(environ, start_response):
    body = environ['wsgi.input'].read()
    out = json.dumps({
        'method': environ['REQUEST_METHOD'],
        'path': environ.get('RAW_URI') or environ['PATH_INFO'],
        'headers': {k: v for k, v in environ.items() if k.startswith('HTTP_') or k in ('CONTENT_LENGTH', 'CONTENT_TYPE')},
        'bodyLength': len(body),
        'bodySha256': hashlib.sha256(body).hexdigest(),
    }).encode()
    start_response('200 OK', [('Content-Type', 'application/json'), ('Content-Length', str(len(out))), ('Set-Cookie', 'sid=1; Path=/')])
    return [out]
`;

t.test('the app front over HTTP/2: translated to HTTP/1.1 for a real WSGI server, nothing smuggled', async (t) => {
  const app = await startGunicorn(t, ECHO_APP);
  const dir = tempFiles('h2-app-', { 'a.txt': 'hello' });
  const k = await startKeyhole(baseYaml(`${filesProviderYaml(dir)}app:\n  upstream: ${app.origin}\n  maxBodyBytes: 100000\n`));
  t.teardown(() => k.close());
  const s = await h2session(k);
  t.teardown(() => s.close());
  type Echo = { method: string; path: string; headers: Record<string, string>; bodyLength: number; bodySha256: string };
  const get = await h2get(s, '/projects/1?x=1', { cookie: ['a=1', 'b=2'], 'x-forwarded-for': '6.6.6.6' });
  t.equal(get.status, 200);
  const echo = JSON.parse(get.body.toString()) as Echo;
  t.equal(echo.path, '/projects/1?x=1');
  t.equal(echo.headers.HTTP_HOST, `localhost:${portOf(k)}`, 'Host is the client\'s :authority');
  t.equal(echo.headers.HTTP_COOKIE, 'a=1; b=2', 'cookie crumbs joined as one HTTP/1.1 Cookie field');
  t.equal(echo.headers.HTTP_X_FORWARDED_FOR, '127.0.0.1', 'X-Forwarded-For is set by Keyhole, not the client');
  t.equal(echo.headers.HTTP_X_FORWARDED_PROTO, 'https');
  t.notOk(Object.keys(echo.headers).some((h) => /^HTTP__/.test(h) || h.includes('AUTHORITY') || h.includes('SCHEME')), 'no pseudo-header reached the app');
  t.ok(get.headers['set-cookie'], 'the app\'s cookie reaches the client');
  t.notOk(get.headers.connection, 'no connection-specific field in an HTTP/2 answer');

  // A body without Content-Length (a streamed fetch): re-chunked for the app, bytes exact.
  const parts = [Buffer.alloc(3000, 1), Buffer.alloc(5000, 2)];
  const post = await h2get(s, '/api/tasks', { ':method': 'POST', 'content-type': 'application/octet-stream' }, parts);
  t.equal(post.status, 200, 'a POST without Content-Length is forwarded');
  const posted = JSON.parse(post.body.toString()) as Echo;
  t.equal(posted.bodyLength, 8000);
  t.equal(posted.bodySha256, createHash('sha256').update(Buffer.concat(parts)).digest('hex'), 'the exact body');
  const sized = await h2get(s, '/api/tasks', { ':method': 'POST', 'content-length': '4' }, Buffer.from('abcd'));
  t.equal((JSON.parse(sized.body.toString()) as Echo).headers.CONTENT_LENGTH, '4', 'a Content-Length body keeps its length');

  const big = await h2get(s, '/api/tasks', { ':method': 'POST' }, [Buffer.alloc(60_000), Buffer.alloc(60_000)]);
  t.equal(big.status, 413, 'a streamed body past app.maxBodyBytes: 413');
  const after = await h2get(s, '/projects/2');
  t.equal(after.status, 200, 'the connection goes on serving after a refusal');

  // Fields HTTP/1.1 cannot carry (CR, LF, NUL in a value, a space in a name): nghttp2 drops
  // them; whatever is left reaches the app as fields of their own, nothing split or injected.
  const raw = await RawH2.open(portOf(k), ca);
  t.teardown(() => raw.close());
  const appReq = getFields('/echo');
  const hostile: [string, string | Buffer][] = [
    ['x-crlf', Buffer.from('1\r\nx-injected: crlf')],
    ['x-lf', Buffer.from('1\nx-injected: lf')],
    ['x-nul', Buffer.from('1\0x')],
    ['x space', '1'],
    ['x-edge', ' padded '],
  ];
  for (const [i, field] of hostile.entries()) raw.request(101 + 2 * i, [...appReq, field]);
  await raw.until(() => hostile.every((_, i) => raw.outcome(101 + 2 * i) !== undefined && (raw.outcome(101 + 2 * i) === 'reset' || raw.frames.some((f) => f.stream === 101 + 2 * i && f.flags & FLAG.END_STREAM))));
  for (const [i, [name]] of hostile.entries()) {
    const text = raw.body(101 + 2 * i).toString('latin1');
    t.notMatch(text, /INJECTED|X_SPACE|x-injected/i, `${name}: nothing injected`);
    const echoed = text ? (JSON.parse(text) as Echo).headers : {};
    t.notOk(Object.keys(echoed).some((h) => h.startsWith('HTTP_X_') && /[\r\n\0]/.test(echoed[h]!)), `${name}: no app field holds a line break or NUL`);
  }

  // A Content-Length that the DATA frames do not match: the stream is reset by nghttp2.
  raw.request(201, [[':method', 'POST'], [':scheme', 'https'], [':authority', 'localhost'], [':path', '/api/tasks'], ['content-length', '2']], false);
  raw.send(frame(FRAME.DATA, FLAG.END_STREAM, 201, Buffer.from('abcdefgh')));
  await raw.until(() => raw.outcome(201) !== undefined);
  t.not(raw.statusByte(201), 0x88, 'a body longer than its Content-Length is not forwarded as a success');
});
