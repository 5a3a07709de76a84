// 1xx answers before the final one (RFC 9110 §15.2): interim, never the answer. Node's own
// http server sends 103 Early Hints (writeEarlyHints), 102 Processing (writeProcessing)
// and an unsolicited 100 Continue (writeContinue); a raw server plays what no real server
// sends on its own (an unregistered 1xx, 101 to a request that asked for no upgrade).
import t, { type Test as Tap } from 'tap';
import type { ServerResponse } from 'node:http';
import { startRawUpstream, startUpstream } from '../helpers/upstream.ts';
import { keyholeFor } from './pair.ts';

const FINAL = 'the final answer';

function final(res: ServerResponse, method: string): void {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': FINAL.length, etag: '"final"' });
  res.end(method === 'HEAD' ? undefined : FINAL);
}

const interim: Record<string, (res: ServerResponse) => void> = {
  'early-hints': (res) => res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' }),
  processing: (res) => {
    res.writeProcessing();
    res.writeProcessing();
  },
  mixed: (res) => {
    res.writeProcessing();
    res.writeEarlyHints({ link: '</a.js>; rel=preload; as=script' });
    res.writeEarlyHints({ link: '</b.js>; rel=preload; as=script' });
  },
};

t.test('interim answers (102, 103, several) are skipped: the final answer is relayed', async (t) => {
  const up = await startUpstream({
    override: (req, res) => {
      const name = req.url!.slice(1);
      const send = interim[name];
      if (!send) return false;
      send(res);
      // The final answer in a later write: the interim ones have gone out on their own.
      setTimeout(() => final(res, req.method!), 20);
      return true;
    },
  });
  t.teardown(() => up.close());
  const { fetch } = await keyholeFor(t, up.origin);
  for (const name of Object.keys(interim)) {
    for (const method of ['GET', 'HEAD'] as const) {
      const r = await fetch(name, { method });
      const label = `${method} ${name}`;
      t.equal(r.status, 200, `${label}: the final status`);
      t.equal(r.body.toString(), method === 'HEAD' ? '' : FINAL, `${label}: the final body`);
      t.notOk(r.cut, `${label}: ended cleanly`);
      t.equal(r.headers.etag, '"final"', `${label}: the final answer's headers`);
      t.equal(r.headers.link, undefined, `${label}: nothing of an interim answer is relayed`);
      t.match(r.audit, { status: 200, reason: 'ok', aborted: false }, `${label}: audited as served`);
    }
  }
});

/** A raw upstream: each path writes its bytes, then the final answer unless told otherwise. */
const rawUpstream = async (t: Tap, answers: Record<string, string>) =>
  (
    await startRawUpstream(t, (socket, method, path) => {
      const bytes = answers[path] ?? 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n';
      socket.write(bytes.replace('BODY', method === 'HEAD' ? '' : FINAL));
    })
  ).origin;

const FINAL_HEAD = `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${FINAL.length}\r\n\r\nBODY`;

t.test('an unregistered 1xx is interim too', async (t) => {
  const origin = await rawUpstream(t, {
    unknown: `HTTP/1.1 150 Whatever\r\nX-Interim: 1\r\n\r\nHTTP/1.1 199 Misc\r\n\r\n${FINAL_HEAD}`,
  });
  const { fetch } = await keyholeFor(t, origin);
  for (const method of ['GET', 'HEAD'] as const) {
    const r = await fetch('unknown', { method });
    t.equal(r.status, 200, `${method}: the final status`);
    t.equal(r.body.toString(), method === 'HEAD' ? '' : FINAL);
    t.equal(r.headers['x-interim'], undefined);
    t.match(r.audit, { reason: 'ok' });
  }
});

t.test('101 Switching Protocols to a request that asked for no upgrade is an upstream error', async (t) => {
  const origin = await rawUpstream(t, {
    // No Upgrade header: undici hands it over as a plain 1xx.
    bare: `HTTP/1.1 101 Switching Protocols\r\n\r\n${FINAL_HEAD}`,
    // With Upgrade and Connection: upgrade undici itself refuses the connection.
    upgrade: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nwhatever the new protocol says',
  });
  const { fetch } = await keyholeFor(t, origin);
  for (const name of ['bare', 'upgrade']) {
    for (const method of ['GET', 'HEAD'] as const) {
      const r = await fetch(name, { method });
      t.equal(r.status, 502, `${method} ${name}: 502`);
      if (method === 'GET') t.equal(JSON.parse(r.body.toString()).error, 'upstream_error');
      t.notMatch(r.body.toString(), /final answer|new protocol/, 'nothing after the 101 is relayed');
      t.match(r.audit, { status: 502, reason: 'upstream_error' });
      // Named for what it is, not an internal assertion of the HTTP client.
      t.match(String(r.audit.detail), name === 'bare' ? /101/ : /upgrade/i, `${method} ${name}: the audit names the fault`);
      t.notMatch(String(r.audit.detail), /assert|expression/i);
    }
  }
});

t.test('unsolicited 100 Continue: refused by undici below the dispatch API, a clean 502', async (t) => {
  // RFC 9110 §15.2 asks clients to skip it; undici 8's HTTP/1.1 parser destroys the
  // connection instead (client-h1.js onHeadersComplete, `statusCode === 100`), before any
  // handler sees the answer. Keyhole cannot skip it from the relay: it answers 502 and
  // never mistakes the 100, or what follows, for the answer. When undici skips it like
  // the other 1xx, this test fails and the answer should become the final 200.
  const up = await startUpstream({
    override: (req, res) => {
      if (req.url !== '/continue') return false;
      res.writeContinue();
      setTimeout(() => final(res, req.method!), 20);
      return true;
    },
  });
  t.teardown(() => up.close());
  const { fetch } = await keyholeFor(t, up.origin);
  const r = await fetch('continue');
  t.equal(r.status, 502);
  t.equal(JSON.parse(r.body.toString()).error, 'upstream_error');
  t.notMatch(r.body.toString(), /final answer/);
  t.match(r.audit, { status: 502, reason: 'upstream_error' });
});
