// Streaming through the http provider against a real upstream: Range and conditionals give
// what the upstream itself gives; header allowlists both ways; security headers; aborts
// both ways; upstream failures and timeouts become 502/504 without leaking the upstream.
import t, { type Test as Tap } from 'tap';
import { createServer as createNet, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { upstreamBehindKeyhole, type UpstreamOptions } from '../helpers/upstream.ts';
import { auditFor, dataUrl, type Running } from '../helpers/keyhole.ts';

/** The audit event for a data URI (written when the response closes). */
async function auditOf(k: Running, uri: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 200; i++) {
    const hit = k.audits().find((a) => a.uri === uri);
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no audit event for ${uri}`);
}

const big = Buffer.alloc(256 * 1024);
for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 251;

const pair = (t: Tap, upstream: UpstreamOptions, extra = '', baseUrl?: string) =>
  upstreamBehindKeyhole(t, upstream, { extra, ...(baseUrl ? { baseUrl: `${baseUrl}/` } : {}) });

t.test('Range and conditionals: same answer as the upstream itself', async (t) => {
  const { up, get } = await pair(t, { objects: { '/big.bin': { body: big } } });
  const direct = await request(`${up.origin}/big.bin`);
  const etag = direct.headers.etag as string;
  await direct.body.dump();
  const cases: Record<string, string>[] = [
    {},
    { range: 'bytes=0-99' },
    { range: 'bytes=1000-' },
    { range: 'bytes=-500' },
    { range: 'bytes=999999-' },
    { 'if-none-match': etag },
    { 'if-none-match': '"nope"' },
    { range: 'bytes=10-20', 'if-range': etag },
    { range: 'bytes=10-20', 'if-range': '"stale"' },
  ];
  for (const h of cases) {
    for (const method of ['GET', 'HEAD'] as const) {
      const d = await request(`${up.origin}/big.bin`, { method, headers: h });
      const dBody = Buffer.from(await d.body.arrayBuffer());
      const k = await get('big.bin', h, method);
      const label = `${method} ${JSON.stringify(h)}`;
      t.equal(k.status, d.statusCode, `${label}: status`);
      t.ok(k.body.equals(dBody), `${label}: body (${dBody.length} bytes)`);
      t.equal(k.headers['content-range'], d.headers['content-range'], `${label}: content-range`);
      // A 416 goes out as a head only (its page stays with Keyhole): Content-Length 0.
      if (d.statusCode === 416) t.equal(k.headers['content-length'], '0', `${label}: content-length`);
      else if (d.statusCode !== 304) t.equal(k.headers['content-length'], d.headers['content-length'], `${label}: content-length`);
      t.equal(k.headers.etag, d.headers.etag, `${label}: etag`);
    }
  }
  const forwarded = up.log.filter((r) => r.headers['if-range'] === etag);
  t.ok(forwarded.length > 0 && forwarded.every((r) => r.headers.range === 'bytes=10-20'), 'Range and If-Range forwarded as sent');
});

t.test('header allowlist both ways, nosniff and the CSP sandbox everywhere', async (t) => {
  const { up, get, token } = await pair(t, {
    objects: {
      '/a.jpg': { body: 'jpeg', type: 'image/jpeg' },
      '/a.html': { body: '<script>1</script>', type: 'text/html' },
      '/a.svg': { body: '<svg/>', type: 'image/svg+xml' },
      '/a.xml': { body: '<a/>', type: 'text/xml; charset=utf-8' },
      '/a.atom': { body: '<a/>', type: 'application/atom+xml' },
    },
  });
  const res = await get('a.jpg', {
    cookie: 'session=1',
    'x-forwarded-for': '1.2.3.4',
    referer: 'https://app/',
    origin: 'https://app',
    'x-custom': 'y',
    'if-modified-since': 'Mon, 01 Jan 2001 00:00:00 GMT',
    'user-agent': 'test-agent',
  });
  t.equal(res.status, 200);
  const sent = up.log[0]!.headers;
  for (const h of ['cookie', 'x-forwarded-for', 'referer', 'origin', 'x-custom', 'user-agent', 'authorization']) t.equal(sent[h], undefined, `${h} not forwarded`);
  t.equal(sent['if-modified-since'], 'Mon, 01 Jan 2001 00:00:00 GMT', 'If-Modified-Since forwarded');
  t.equal(sent['accept-encoding'], 'identity', 'no compression negotiated: byte ranges stay meaningful');
  t.notOk(JSON.stringify(sent).includes(token));
  for (const h of ['set-cookie', 'server', 'x-amz-request-id']) t.equal(res.headers[h], undefined, `${h} not relayed`);
  for (const h of ['content-type', 'content-length', 'etag', 'last-modified', 'accept-ranges']) t.ok(res.headers[h], `${h} relayed`);
  t.equal(res.headers['cache-control'], 'private');
  t.equal(res.headers['x-content-type-options'], 'nosniff');
  t.equal(res.headers['content-security-policy'], "sandbox; default-src 'none'", 'images are sandboxed too: every data answer is');
  t.match(String(res.headers['strict-transport-security']), /^max-age=31536000; includeSubDomains$/);
  for (const f of ['a.html', 'a.svg', 'a.xml', 'a.atom']) {
    const r = await get(f);
    t.match(String(r.headers['content-security-policy']), /^sandbox/, `${f}: sandboxed`);
    t.equal(r.headers['x-content-type-options'], 'nosniff');
  }
  const notModified = await get('a.jpg', { 'if-none-match': String(res.headers.etag) });
  t.equal(notModified.status, 304);
  t.equal(notModified.headers['content-type'], undefined, 'a 304 carries no made-up Content-Type (it would update the cached one)');
  for (const r of [await get('missing'), notModified]) {
    t.equal(r.headers['x-content-type-options'], 'nosniff', `${r.status}: nosniff`);
  }
});

t.test('the client going away aborts the upstream request', async (t) => {
  let upstreamClosed!: () => void;
  const closed = new Promise<void>((r) => (upstreamClosed = r));
  let started!: () => void;
  const streaming = new Promise<void>((r) => (started = r));
  const { k, token } = await pair(t, {
    override: (req, res) => {
      if (!req.url!.startsWith('/endless')) return false;
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const timer = setInterval(() => res.write(Buffer.alloc(16 * 1024)), 5);
      res.on('close', () => {
        clearInterval(timer);
        upstreamClosed();
      });
      started();
      return true;
    },
  });
  const res = await request(k.base + dataUrl('https://data.corp/endless'), { headers: { authorization: `Bearer ${token}` }, dispatcher: k.dispatcher });
  await streaming;
  for await (const _chunk of res.body) break; // read a little, then leave
  await closed;
  t.pass('the upstream saw its request closed');
  const id = res.headers['x-request-id'] as string;
  t.match(await auditFor(k, id), { aborted: true, provider: 'corp', status: 200 });
});

t.test('the upstream dying mid-body aborts the client response, never a clean short 200', async (t) => {
  const { k, get } = await pair(t, {
    override: (req, res) => {
      if (req.url === '/short-length') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 100_000 });
        res.write(Buffer.alloc(1000), () => res.socket!.destroy());
        return true;
      }
      if (req.url === '/short-chunked') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write(Buffer.alloc(1000), () => res.socket!.destroy());
        return true;
      }
      return false;
    },
  });
  for (const path of ['short-length', 'short-chunked']) {
    const err = await get(path).then(
      () => undefined,
      (e: Error) => e,
    );
    t.ok(err instanceof Error, `${path}: the client sees a failed transfer`);
    const audit = await auditOf(k, `https://data.corp/${path}`);
    t.match(audit, { aborted: true, reason: 'upstream_error', decision: 'error' });
    t.ok((audit!.bytes as number) < 100_000);
  }
});

t.test('upstream failures: 502/504 with a request id, no upstream URL or credential', async (t) => {
  const { k, get, up } = await pair(
    t,
    {
      override: (req, res) => {
        if (req.url === '/boom') {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`internal error at ${up.origin} with password hunter2`);
          return true;
        }
        if (req.url === '/garbage') {
          res.socket!.end('NOT HTTP AT ALL\r\n\r\n');
          return true;
        }
        if (req.url === '/redirect') {
          res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
          res.end();
          return true;
        }
        return false;
      },
    },
    'auth: { type: basic, username: u, password: "${env:KEYHOLE_TEST_SECRET}" }',
  );
  for (const [path, status, reason] of [
    ['boom', 502, 'upstream_status'],
    ['garbage', 502, 'upstream_error'],
    ['redirect', 502, 'upstream_status'],
    ['missing', 404, 'not_found'],
  ] as const) {
    const res = await get(path);
    t.equal(res.status, status, `${path}: ${status}`);
    const text = res.body.toString();
    const body = JSON.parse(text);
    t.equal(body.error, reason);
    t.equal(body.requestId, res.headers['x-request-id']);
    // requestId is random hex: a 5-digit port can turn up in it. Look at everything else.
    const shown = text.replace(body.requestId, '');
    t.notOk(shown.includes(String(up.port)) || shown.includes('127.0.0.1') || shown.includes('hunter2') || shown.includes('internal-host'), `${path}: nothing of the upstream leaks`);
    t.equal(res.headers.location, undefined, `${path}: no upstream redirect relayed`);
    t.match(await auditFor(k, body.requestId), { status, reason, provider: 'corp' });
  }
  const metrics = await (await request(`${k.admin}/metrics`)).body.text();
  t.match(metrics, /keyhole_upstream_errors_total\{provider="corp",reason="upstream_status"\} 2\n/, 'upstream errors counted by reason');
  t.match(metrics, /keyhole_upstream_errors_total\{provider="corp",reason="upstream_error"\} 1\n/);
  await up.close();
  const refused = await get('any');
  t.equal(refused.status, 502, 'connection refused: 502');
  t.equal(JSON.parse(refused.body.toString()).error, 'upstream_error');
  t.notOk(refused.body.toString().includes(String(up.port)));
});

t.test('timeouts: connect, headers, idle body', async (t) => {
  // A TCP listener that accepts but never speaks: a TLS handshake to it never completes.
  const sockets = new Set<Socket>();
  const silent = createNet((s) => sockets.add(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => silent.close(() => r()));
  });
  const silentPort = (silent.address() as AddressInfo).port;
  const c = await pair(t, {}, 'timeouts: { connect: 300ms, headers: 5s, body: 5s }', `https://127.0.0.1:${silentPort}`);
  const connect = await c.get('x');
  t.equal(connect.status, 504, 'TLS connect never completes: 504');
  t.equal(JSON.parse(connect.body.toString()).error, 'upstream_timeout');

  const h = await pair(
    t,
    {
      override: (req, res) => {
        if (req.url === '/no-headers') return true; // never answers
        if (req.url === '/stall') {
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 10_000 });
          res.write(Buffer.alloc(100));
          return true;
        }
        return false;
      },
    },
    'timeouts: { connect: 5s, headers: 300ms, body: 300ms }',
  );
  const headers = await h.get('no-headers');
  t.equal(headers.status, 504, 'no response head in time: 504');
  const body = JSON.parse(headers.body.toString());
  t.equal(body.error, 'upstream_timeout');
  t.match(await auditFor(h.k, body.requestId), { reason: 'upstream_timeout', decision: 'error' });

  const stall = await h.get('stall').then(
    () => undefined,
    (e: Error) => e,
  );
  t.ok(stall instanceof Error, 'body stalls past the idle timeout: the client transfer is aborted');
  t.match(await auditOf(h.k, 'https://data.corp/stall'), { reason: 'upstream_timeout', aborted: true });
  h.up.server.closeAllConnections();
});

t.test('one keep-alive pool per provider with bounded connections', async (t) => {
  const ports = new Set<number>();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let waiting = 0;
  const { get, up } = await pair(
    t,
    {
      objects: { '/o.txt': { body: 'ok' } },
      override: (req, res) => {
        ports.add(req.socket.remotePort!);
        if (req.url !== '/held') return false;
        waiting++;
        void gate.then(() => {
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 4 });
          res.end('held');
        });
        return true;
      },
    },
    'connections: 1',
  );
  for (let i = 0; i < 3; i++) t.equal((await get('o.txt')).status, 200);
  t.equal(ports.size, 1, 'sequential requests reuse one kept-alive connection');
  const two = [get('held'), get('held')];
  // With one connection the second request waits in the pool: the upstream sees one at a time.
  while (waiting < 1) await new Promise((r) => setTimeout(r, 10));
  t.equal(up.log.filter((r) => r.url === '/held').length, 1, 'the second request is queued, not a new connection');
  release();
  t.same((await Promise.all(two)).map((r) => r.status), [200, 200]);
  t.equal(ports.size, 1, 'still one connection');
});
