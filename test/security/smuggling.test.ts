// Request smuggling and header abuse on the data routes, over raw TLS sockets: every
// ambiguous framing, folded or poisoned header, duplicate Host or proxy-form target is
// refused with a 400 and a closed connection, and the upstream never hears of it. Some
// cases Node's parser refuses itself, some Keyhole's own head check; both are proved here.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { testCerts } from '../helpers/certs.ts';
import { dataUrl } from '../helpers/keyhole.ts';
import { upstreamBehindKeyhole } from '../helpers/upstream.ts';
import { Tally } from './tally.ts';

const tally = new Tally('smuggling');

const { up, k, token } = await upstreamBehindKeyhole(
  t,
  { objects: { '/files/ok.txt': { body: 'ok', type: 'text/plain' }, '/files/secret.txt': { body: 'secret', type: 'text/plain' } } },
  { path: '/files/' },
);
const port = Number(new URL(k.base).port);
const ca = readFileSync(testCerts().caCert);
const okPath = dataUrl('https://data.corp/ok.txt');
const secretPath = dataUrl('https://data.corp/secret.txt');
const auth = `Authorization: Bearer ${token}\r\n`;

/** Writes raw bytes over TLS; resolves with everything the server sent once it closes. */
function exchange(payload: string): Promise<{ text: string; serverClosed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca });
    const chunks: Buffer[] = [];
    let serverClosed = false;
    // Safety net only: every refused case is closed by the server well before this.
    const guard = setTimeout(() => socket.destroy(), 8000);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => (serverClosed = true));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ECONNRESET') reject(err);
    });
    socket.on('close', () => {
      clearTimeout(guard);
      resolve({ text: Buffer.concat(chunks).toString('latin1'), serverClosed });
    });
    socket.once('secureConnect', () => socket.write(Buffer.from(payload, 'latin1')));
  });
}

const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));

interface Case {
  name: string;
  payload: string;
  /** who refuses it: documents the layer, the assertion is the same */
  by: 'node' | 'keyhole';
  /** Node's own answers (missing Host) carry no JSON body; CONNECT without a handler is just closed */
  answer?: 'json' | 'plain' | 'closed';
}

const head = (lines: string) => `GET ${okPath} HTTP/1.1\r\nHost: localhost\r\n${auth}${lines}`;
const cases: Case[] = [
  { name: 'CL + TE: chunked', by: 'node', payload: head('Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n') },
  { name: 'TE: chunked + CL', by: 'node', payload: head('Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n') },
  { name: 'duplicate Content-Length, same value', by: 'node', payload: head('Content-Length: 0\r\nContent-Length: 0\r\n\r\n') },
  { name: 'duplicate Content-Length, different values', by: 'node', payload: head('Content-Length: 0\r\nContent-Length: 5\r\n\r\nABCDE') },
  { name: 'Content-Length list', by: 'node', payload: head('Content-Length: 0, 5\r\n\r\n') },
  { name: 'Content-Length with sign', by: 'node', payload: head('Content-Length: +0\r\n\r\n') },
  { name: 'negative Content-Length', by: 'node', payload: head('Content-Length: -1\r\n\r\n') },
  { name: 'hex Content-Length', by: 'node', payload: head('Content-Length: 0x0\r\n\r\n') },
  { name: 'TE: chunked, identity', by: 'node', payload: head('Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n') },
  { name: 'TE repeated', by: 'node', payload: head('Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n') },
  { name: 'space before colon (Transfer-Encoding : chunked)', by: 'node', payload: head('Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n') },
  { name: 'vertical tab before TE value', by: 'node', payload: head('Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n') },
  { name: 'TE hidden by a leading space (obs-fold)', by: 'node', payload: head(' Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n') },
  { name: 'TE: xchunked', by: 'keyhole', payload: head('Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n') },
  { name: 'TE: "chunked" (quoted)', by: 'keyhole', payload: head('Transfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n') },
  { name: 'TE: gzip, chunked', by: 'keyhole', payload: head('Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n') },
  { name: 'TE on HTTP/1.0', by: 'keyhole', payload: `GET ${okPath} HTTP/1.0\r\nHost: localhost\r\n${auth}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n` },
  { name: 'obs-fold (space)', by: 'node', payload: head('X-Note: a\r\n b\r\n\r\n') },
  { name: 'obs-fold (tab) on Authorization', by: 'node', payload: `GET ${okPath} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer\r\n\t${token}\r\n\r\n` },
  { name: 'NUL in header value', by: 'node', payload: head('X-Note: a\x00b\r\n\r\n') },
  { name: 'NUL in Range value', by: 'node', payload: head('Range: bytes=0-1\x00\r\n\r\n') },
  { name: 'bare CR in header value', by: 'node', payload: head('X-Note: a\rInjected: b\r\n\r\n') },
  { name: 'bare LF inside a header value', by: 'node', payload: head('X-Note: a\nInjected: b\r\n\r\n') },
  { name: 'bare LF line endings', by: 'node', payload: `GET ${okPath} HTTP/1.1\nHost: localhost\n${auth.replace('\r\n', '\n')}\n` },
  { name: 'DEL in header value', by: 'node', payload: head('X-Note: a\x7fb\r\n\r\n') },
  { name: 'control char in header name', by: 'node', payload: head('X\x01Note: a\r\n\r\n') },
  { name: 'NUL in request target', by: 'node', payload: `GET ${okPath}\x00 HTTP/1.1\r\nHost: localhost\r\n${auth}\r\n` },
  { name: 'tab in request target', by: 'node', payload: `GET ${okPath}\tx HTTP/1.1\r\nHost: localhost\r\n${auth}\r\n` },
  { name: 'extra word in request line', by: 'node', payload: `GET ${okPath} HTTP/1.1 x\r\nHost: localhost\r\n${auth}\r\n` },
  { name: 'bad HTTP version', by: 'node', payload: `GET ${okPath} HTTP/1.10\r\nHost: localhost\r\n${auth}\r\n` },
  { name: 'missing Host on HTTP/1.1', by: 'node', answer: 'plain', payload: `GET ${okPath} HTTP/1.1\r\n${auth}\r\n` },
  { name: 'duplicate Host', by: 'keyhole', payload: head('Host: elsewhere.example\r\n\r\n') },
  { name: 'duplicate Host, differing case', by: 'keyhole', payload: head('HOST: localhost\r\n\r\n') },
  { name: 'absolute-form target (https)', by: 'keyhole', payload: `GET https://evil.example${okPath} HTTP/1.1\r\nHost: localhost\r\n${auth}\r\n` },
  { name: 'absolute-form target (own origin)', by: 'keyhole', payload: `GET https://localhost:${port}${okPath} HTTP/1.1\r\nHost: localhost\r\n${auth}\r\n` },
  { name: 'absolute-form target (http, upstream)', by: 'keyhole', payload: `GET ${up.origin}/files/ok.txt HTTP/1.1\r\nHost: localhost\r\n${auth}\r\n` },
  { name: 'asterisk-form target', by: 'keyhole', payload: `OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n` },
  { name: 'authority-form target (CONNECT)', by: 'node', answer: 'closed', payload: `CONNECT 127.0.0.1:${up.port} HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\n${auth}\r\n` },
  {
    name: 'refused request followed by a pipelined one: the pipelined one never runs',
    by: 'keyhole',
    payload: `GET https://evil.example${okPath} HTTP/1.1\r\nHost: localhost\r\n${auth}\r\nGET ${secretPath} HTTP/1.1\r\nHost: localhost\r\n${auth}\r\n`,
  },
  {
    name: 'TE: xchunked hiding a request behind a zero-length body: the hidden one never runs',
    by: 'keyhole',
    payload: head(`Transfer-Encoding: xchunked\r\n\r\nGET ${secretPath} HTTP/1.1\r\nHost: localhost\r\n${auth}\r\n`),
  },
  {
    name: 'duplicate Host followed by a pipelined request: the pipelined one never runs',
    by: 'keyhole',
    payload: head(`Host: other\r\n\r\nGET ${secretPath} HTTP/1.1\r\nHost: localhost\r\n${auth}\r\n`),
  },
  {
    name: 'CL+TE with a smuggled request in the body',
    by: 'node',
    payload: head(`Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET ${secretPath} HTTP/1.1\r\nHost: localhost\r\n${auth}\r\n`),
  },
];

for (const c of cases) {
  t.test(`${c.name} → 400, connection closed, nothing upstream (${c.by})`, async (t) => {
    const before = up.log.length;
    const { text, serverClosed } = await exchange(c.payload);
    const seen = statuses(text);
    // Let a wrongly run pipelined request reach the upstream before we look.
    await new Promise((r) => setTimeout(r, 100));
    const answer = c.answer ?? 'json';
    if (answer === 'closed') t.same(seen, [], 'no answer at all: the connection is dropped');
    else t.equal(seen[0], 400, `first answer is 400 (got ${seen.join(',') || 'nothing'})`);
    t.notOk(seen.some((s) => s < 400), 'no success answer on this connection');
    if (answer === 'json') t.match(text, /"error":"bad_request"/, 'JSON error body with the reason code');
    t.ok(serverClosed || answer === 'closed', 'the server closed the connection');
    t.equal(up.log.length, before, 'the upstream received nothing');
    tally.record(c.name, (answer === 'closed' || seen[0] === 400) && !seen.some((s) => s < 400) && up.log.length === before);
  });
}

t.test('a request hidden in a GET body (Content-Length) is discarded, never run', async (t) => {
  const smuggled = `GET ${secretPath} HTTP/1.1\r\nHost: localhost\r\n${auth}\r\n`;
  const payload = head(`Content-Length: ${Buffer.byteLength(smuggled)}\r\n\r\n${smuggled}`) + `GET ${okPath} HTTP/1.1\r\nHost: localhost\r\n${auth}Connection: close\r\n\r\n`;
  const before = up.log.length;
  const { text } = await exchange(payload);
  t.same(statuses(text), [200, 200], 'exactly the two real requests were answered');
  const reached = up.log.slice(before).map((r) => r.url);
  t.same(reached, ['/files/ok.txt', '/files/ok.txt']);
  t.notOk(text.includes('secret'), 'the hidden request never ran');
  tally.record('request hidden in CL body', !reached.includes('/files/secret.txt'));
});

t.test('a request hidden in a chunked GET body is discarded, never run', async (t) => {
  const smuggled = `GET ${secretPath} HTTP/1.1\r\nHost: localhost\r\n${auth}\r\n`;
  const chunk = `${Buffer.byteLength(smuggled).toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`;
  const payload = head(`Transfer-Encoding: chunked\r\n\r\n${chunk}`) + `GET ${okPath} HTTP/1.1\r\nHost: localhost\r\n${auth}Connection: close\r\n\r\n`;
  const before = up.log.length;
  const { text } = await exchange(payload);
  t.same(statuses(text), [200, 200]);
  t.notOk(up.log.slice(before).some((r) => r.url === '/files/secret.txt'), 'the hidden request never ran');
  tally.record('request hidden in chunked body', !up.log.slice(before).some((r) => r.url === '/files/secret.txt'));
});

t.test('control: the same raw exchange with clean framing is served', async (t) => {
  const { text } = await exchange(head('Connection: close\r\n\r\n'));
  t.same(statuses(text), [200]);
  t.match(text, /\r\n\r\nok$/);
});

t.test('hostile inputs tally', async (t) => tally.report(t));
