// Relayed header values leave Keyhole as the bytes the upstream sent. A Content-Disposition
// filename in raw UTF-8 (what nginx sends for a UTF-8 config) was a 502: Node's writeHead
// re-reads a Content-Disposition that follows Content-Length as UTF-8 and refuses what it
// decodes to. Bytes that are not UTF-8 at all (0xE9 alone, Latin-1) pass unchanged too, in
// every relayed header, on GET, HEAD and Range, with and without the credential guard
// (which holds the head back); control characters are still refused.
import t, { type Test } from 'tap';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { baseYaml, dataUrl, startKeyhole, type Running } from '../helpers/keyhole.ts';
import { startNginx } from '../helpers/real-servers.ts';

const FILENAME = 'inline; filename="é☃"';
const latin1 = (v: string | string[] | undefined) => Buffer.from(typeof v === 'string' ? v : '', 'latin1');

async function keyholeFor(t: Test, origin: string): Promise<{ k: Running; auth: Record<string, string> }> {
  // `guarded` injects a credential: the relay then holds the head until the first body bytes.
  const k = await startKeyhole(
    baseYaml(`providers:
  - { name: plain, kind: http, match: "https://plain.corp/", allowPrivateNetworks: true, baseUrl: "${origin}/" }
  - { name: guarded, kind: http, match: "https://guarded.corp/", allowPrivateNetworks: true, baseUrl: "${origin}/", auth: { type: bearer, token: "\${env:UP_TOKEN}" } }
`),
    { env: { UP_TOKEN: 'upstream-token-0123456789abcdef' } },
  );
  t.teardown(() => k.close());
  return { k, auth: { authorization: `Bearer ${await k.token({ scope: ['https://plain.corp/', 'https://guarded.corp/'] })}` } };
}

t.test('a real nginx sending a UTF-8 filename: relayed byte for byte', async (t) => {
  const nginx = await startNginx(t, `    location / { add_header Content-Disposition '${FILENAME}'; }`, { 'photo.jpg': Buffer.alloc(1000, 7) });
  const { k, auth } = await keyholeFor(t, nginx.origin);
  const want = Buffer.from(FILENAME, 'utf8');
  for (const host of ['plain.corp', 'guarded.corp']) {
    for (const [label, method, extra] of [
      ['GET', 'GET', {}],
      ['HEAD', 'HEAD', {}],
      ['Range', 'GET', { range: 'bytes=10-19' }],
    ] as const) {
      const res = await k.get(dataUrl(`https://${host}/photo.jpg`), { ...auth, ...extra }, method);
      t.equal(res.status, label === 'Range' ? 206 : 200, `${host} ${label}: served, not 502`);
      t.same(latin1(res.headers['content-disposition']), want, `${host} ${label}: the filename's bytes as nginx sent them`);
      t.equal(res.body.length, method === 'HEAD' ? 0 : label === 'Range' ? 10 : 1000, `${host} ${label}: the body`);
    }
  }
});

t.test('a raw upstream: bytes that are not UTF-8 in every relayed header, control characters refused', async (t) => {
  const E9 = Buffer.from([0xe9]);
  const answers: Record<string, Buffer> = {
    latin1: Buffer.concat([
      Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 5\r\nContent-Disposition: inline; filename="caf'),
      E9,
      Buffer.from('.png"\r\nETag: "v'),
      E9,
      Buffer.from('"\r\nLast-Modified: Mon, 01 Jan 2024 00:00:00 GMT'),
      Buffer.from([0xa0, 0xff]),
      Buffer.from('\r\n\r\nhello'),
    ]),
    chunked: Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\nContent-Disposition: attachment; filename="'), E9, Buffer.from('"\r\n\r\n5\r\nhello\r\n0\r\n\r\n')]),
    control: Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 5\r\nContent-Disposition: inline; filename="a\x01b"\r\n\r\nhello'),
  };
  const upstream = createServer((s: Socket) => {
    let head = '';
    s.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      const name = /^[A-Z]+ \/(\w+)/.exec(head)?.[1];
      if (name === undefined || !head.includes('\r\n\r\n')) return;
      const answer = answers[name]!;
      // HEAD: the same head, no body
      s.end(head.startsWith('HEAD') ? answer.subarray(0, answer.indexOf('\r\n\r\n') + 4) : answer);
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => upstream.close(() => r())));
  const { k, auth } = await keyholeFor(t, `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
  for (const host of ['plain.corp', 'guarded.corp']) {
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await k.get(dataUrl(`https://${host}/latin1`), auth, method);
      t.equal(res.status, 200, `${host} ${method}: served`);
      t.same(latin1(res.headers['content-disposition']), Buffer.from('inline; filename="caf\xe9.png"', 'latin1'), `${host} ${method}: Content-Disposition byte for byte`);
      t.same(latin1(res.headers.etag), Buffer.from('"v\xe9"', 'latin1'), `${host} ${method}: ETag byte for byte`);
      t.same(latin1(res.headers['last-modified']), Buffer.from('Mon, 01 Jan 2024 00:00:00 GMT\xa0\xff', 'latin1'), `${host} ${method}: Last-Modified byte for byte`);
    }
    const chunked = await k.get(dataUrl(`https://${host}/chunked`), auth);
    t.same([chunked.status, latin1(chunked.headers['content-disposition']), chunked.body.toString()], [200, Buffer.from('attachment; filename="\xe9"', 'latin1'), 'hello'], `${host}: a chunked answer (no Content-Length) too`);
    const control = await k.get(dataUrl(`https://${host}/control`), auth);
    t.equal(control.status, 502, `${host}: a control character in a header is still refused`);
  }
});
