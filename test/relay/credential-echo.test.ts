// Hole D: an upstream that echoes the request (a debug endpoint, an error page printing
// Authorization) would hand the credential Keyhole injected to the browser. Here the
// upstream (Node's http server) echoes the BasicAuth it received: in every kind of header,
// relayed or not, and in the body at the start, at the end, repeated, and split over two
// writes with a pause between. The client must get a 502 (header) or a cut transfer
// (body), never any 4 bytes in a row of the secret, and one audit event says why.
//
// The second half drives the relay itself with a scripted dispatcher, so the chunk
// boundaries are exactly the ones chosen (TCP may merge writes): every split of a body
// around the secret, and bodies that only come close to it, which must pass untouched.
import t, { type Test as Tap } from 'tap';
import fc from 'fast-check';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Dispatcher } from 'undici';
import { startUpstream } from '../helpers/upstream.ts';
import { keyholeFor } from './pair.ts';
import { InjectedSecrets } from '../../src/relay/echo-guard.ts';
import { relay } from '../../src/relay/relay.ts';
import type { DataRequest } from '../../src/http/data-request.ts';

// Chosen so that its forms need escaping everywhere: base64 with + / =, JSON (" and /),
// HTML (& < > " '), percent-encoding (nearly all of it).
const USER = 'svc';
const PASSWORD = `Z~>?k&<q"/'1x?>`;
const B64 = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
const HEADER = `Basic ${B64}`;

const percent = (s: string) => encodeURIComponent(s);
const json = (s: string) => JSON.stringify(s).slice(1, -1);
const phpJson = (s: string) => json(s).replaceAll('/', '\\/');
const html = (s: string) => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;').replaceAll("'", '&#x27;');

/** How an echo page shows the credential, and the part of that text that is secret. */
const FORMS: Record<string, { shown: string; secret: string }> = {
  header: { shown: HEADER, secret: B64 },
  base64: { shown: B64, secret: B64 },
  'user:password': { shown: `${USER}:${PASSWORD}`, secret: PASSWORD },
  password: { shown: PASSWORD, secret: PASSWORD },
  'percent-encoded base64': { shown: `Basic%20${percent(B64)}`, secret: percent(B64) },
  'JSON, slashes escaped (PHP)': { shown: `{"authorization":"${phpJson(HEADER)}"}`, secret: phpJson(B64) },
  'JSON password': { shown: `{"password":"${json(PASSWORD)}"}`, secret: json(PASSWORD) },
  'HTML-escaped password': { shown: `<td>${html(PASSWORD)}</td>`, secret: html(PASSWORD) },
};

/** Every run of 4 bytes of `secret` that `received` contains. */
function leaked(received: Buffer, secret: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 4 <= secret.length; i++) {
    const window = secret.slice(i, i + 4);
    if (received.includes(Buffer.from(window))) out.push(window);
  }
  return out;
}

const FILL = Buffer.alloc(40_000, '.'); // shares no byte with any form above
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The body layouts: how the shown form sits among filler, write by write (with pauses). */
function layouts(shown: string): Record<string, Buffer[]> {
  const s = Buffer.from(shown);
  const half = Math.floor(s.length / 2);
  return {
    start: [Buffer.concat([s, FILL]), FILL],
    end: [FILL, Buffer.concat([FILL, s])],
    repeated: [Buffer.concat([FILL, s, FILL, s]), Buffer.concat([s, FILL, s])],
    'split in half over two writes': [Buffer.concat([FILL, s.subarray(0, half)]), Buffer.concat([s.subarray(half), FILL])],
    'split after its first byte': [Buffer.concat([FILL, s.subarray(0, 1)]), Buffer.concat([s.subarray(1), FILL])],
    'split before its last byte': [Buffer.concat([FILL, s.subarray(0, s.length - 1)]), Buffer.concat([s.subarray(s.length - 1), FILL])],
  };
}

t.test('an upstream echoing the injected BasicAuth', async (t) => {
  const bodies = new Map<string, Buffer[]>();
  const bodyPath = (form: number, layout: number) => `body/${form}/${layout}`;
  Object.values(FORMS).forEach((form, i) => Object.values(layouts(form.shown)).forEach((writes, j) => bodies.set(`/${bodyPath(i, j)}`, writes)));
  const ordinary = Buffer.alloc(200_000);
  for (let i = 0; i < ordinary.length; i++) ordinary[i] = (i * 13) % 256;
  const up = await startUpstream({
    demand: { header: 'authorization', value: HEADER },
    objects: { '/ordinary.bin': { body: ordinary } },
    override: (req, res) => {
      const auth = req.headers.authorization!;
      const headerCase = /^\/header\/(.+)$/.exec(req.url!)?.[1];
      if (headerCase) {
        const b64 = auth.slice('Basic '.length);
        const decoded = Buffer.from(b64, 'base64').toString();
        const value = {
          etag: `"${b64}"`,
          'last-modified': auth,
          'content-disposition': `attachment; filename="${decoded}.bin"`,
          'content-disposition-encoded': `attachment; filename*=UTF-8''${percent(decoded)}`,
          'content-type': `text/plain; charset=${b64}`,
          'content-range': `bytes 0-9/10; ${decoded}`,
          'x-debug-authorization': auth,
          'set-cookie': `echo=${b64}`,
        }[headerCase]!;
        const name = headerCase === 'content-disposition-encoded' ? 'content-disposition' : headerCase;
        res.writeHead(200, { [name]: value, 'content-type': name === 'content-type' ? value : 'text/plain', 'content-length': 10 });
        res.end('0123456789');
        return true;
      }
      const writes = bodies.get(req.url!);
      if (!writes) return false;
      res.writeHead(200, { 'content-type': 'text/plain' });
      void (async () => {
        for (const w of writes) {
          await new Promise<void>((r) => res.write(w, () => r()));
          await pause(30); // the next write goes out on its own
        }
        res.end();
      })();
      return true;
    },
  });
  t.teardown(() => up.close());
  const { fetch, k } = await keyholeFor(t, up.origin, 'auth: { type: basic, username: svc, password: "${env:UP_PASS}" }', { UP_PASS: PASSWORD });

  t.test('ordinary answers pass as they are: GET, HEAD, Range, 304', async (t) => {
    const full = await fetch('ordinary.bin');
    t.equal(full.status, 200);
    t.ok(full.body.equals(ordinary) && !full.cut, 'the whole body');
    t.equal(full.headers['content-length'], String(ordinary.length));
    const head = await fetch('ordinary.bin', { method: 'HEAD' });
    t.equal(head.status, 200);
    t.equal(head.headers['content-length'], String(ordinary.length), 'HEAD: the head, with nothing to wait for');
    t.equal(head.body.length, 0);
    const part = await fetch('ordinary.bin', { headers: { range: 'bytes=100-199' } });
    t.equal(part.status, 206);
    t.ok(part.body.equals(ordinary.subarray(100, 200)));
    const again = await fetch('ordinary.bin', { headers: { 'if-none-match': String(full.headers.etag) } });
    t.equal(again.status, 304);
    t.match(again.audit, { reason: 'ok', aborted: false });
  });

  t.test('in a response header, relayed or not: 502 before the head', async (t) => {
    for (const name of ['etag', 'last-modified', 'content-disposition', 'content-disposition-encoded', 'content-type', 'content-range', 'x-debug-authorization', 'set-cookie']) {
      const r = await fetch(`header/${name}`);
      t.equal(r.status, 502, `${name}: 502`);
      t.equal(JSON.parse(r.body.toString()).error, 'upstream_credential_echo', `${name}: the reason`);
      const everything = Buffer.from(JSON.stringify(r.headers) + r.body.toString());
      t.same(leaked(everything, B64), [], `${name}: nothing of the base64`);
      t.same(leaked(everything, PASSWORD), [], `${name}: nothing of the password`);
      t.equal(r.headers.etag, undefined);
      t.match(r.audit, { status: 502, reason: 'upstream_credential_echo', decision: 'error' }, `${name}: audited`);
      t.notMatch(String(r.audit.detail), new RegExp(B64.slice(0, 8).replace(/[+/]/g, '\\$&')), 'the audit names where, never the credential');
    }
  });

  t.test('in the body: cut before any byte of the secret leaves', async (t) => {
    for (const [i, [formName, form]] of Object.entries(FORMS).entries()) {
      for (const [j, layout] of Object.keys(layouts(form.shown)).entries()) {
        const label = `${formName}, ${layout}`;
        const r = await fetch(bodyPath(i, j));
        t.ok(r.status === 502 || (r.status === 200 && r.cut), `${label}: refused or cut (status ${r.status}, cut ${r.cut}, ${r.body.length} bytes)`);
        t.same(leaked(r.body, form.secret), [], `${label}: no 4 bytes in a row of the secret`);
        t.notOk(r.body.includes(B64) || r.body.includes(PASSWORD), `${label}: never the base64 nor the password`);
        t.match(r.audit, { reason: 'upstream_credential_echo', decision: 'error' }, `${label}: audited`);
        t.equal(k.audits().filter((a) => a.id === r.audit.id).length, 1, `${label}: one audit event`);
      }
    }
  });

  t.test('a body that only comes close to the secret passes whole', async (t) => {
    // Every secret but its last byte at the end of a write (held back, then released when
    // the next write does not complete it), and the whole body ending on a prefix.
    const writes = Object.values(FORMS).flatMap((f) => [Buffer.concat([FILL.subarray(0, 100), Buffer.from(f.secret.slice(0, -1))]), Buffer.from('!')]);
    writes.push(Buffer.from(B64.slice(0, 10)));
    bodies.set('/near', writes);
    const expected = Buffer.concat(writes);
    const r = await fetch('near');
    t.equal(r.status, 200);
    t.notOk(r.cut, 'complete');
    t.ok(r.body.equals(expected), `byte for byte (${r.body.length} of ${expected.length})`);
    t.match(r.audit, { reason: 'ok', bytes: expected.length });
  });
});

// ---- the relay itself, with chunk boundaries chosen exactly ----

/** A dispatcher that answers from a script: 200, then these chunks, then the end. */
class ScriptedDispatcher {
  private readonly chunks: readonly Buffer[];
  constructor(chunks: readonly Buffer[]) {
    this.chunks = chunks;
  }
  dispatch(_opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    let aborted = false;
    const controller = {
      abort: () => (aborted = true),
      pause: () => {},
      resume: () => {},
      paused: false,
      aborted: false,
      reason: null,
      rawHeaders: null,
      rawTrailers: null,
    } as unknown as Dispatcher.DispatchController;
    void (async () => {
      handler.onRequestStart?.(controller, {});
      handler.onResponseStart?.(controller, 200, { 'content-type': 'application/octet-stream' }, 'OK');
      for (const chunk of this.chunks) {
        await new Promise((r) => setImmediate(r));
        if (aborted) return handler.onResponseError?.(controller, new Error('aborted'));
        handler.onResponseData?.(controller, chunk);
      }
      if (aborted) return handler.onResponseError?.(controller, new Error('aborted'));
      handler.onResponseEnd?.(controller, {});
    })();
    return true;
  }
}

async function relayServer(t: Tap) {
  let next: { chunks: Buffer[]; secrets: InjectedSecrets | undefined; req?: DataRequest } = { chunks: [], secrets: undefined };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const dataReq = { id: 'test', method: 'GET', uri: {}, rest: [], headers: req.headers, outcome: { reason: 'ok', bytes: 0 }, head: [], upstream: undefined } as unknown as DataRequest;
    next.req = dataReq;
    relay(res, dataReq, { dispatcher: new ScriptedDispatcher(next.chunks) as unknown as Dispatcher, path: '/', headers: {}, secrets: next.secrets });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as AddressInfo).port;
  return async (chunks: Buffer[], secrets: InjectedSecrets | undefined) => {
    next = { chunks, secrets };
    return new Promise<{ status: number; body: Buffer; complete: boolean; outcome: DataRequest['outcome'] }>((resolve) => {
      const got: Buffer[] = [];
      let status = 0;
      const done = (complete: boolean) => resolve({ status, body: Buffer.concat(got), complete, outcome: next.req!.outcome });
      const req = httpRequest({ port, host: '127.0.0.1', path: '/', agent: false }, (res) => {
        status = res.statusCode!;
        res.on('data', (d: Buffer) => got.push(d));
        res.on('end', () => done(res.complete));
        res.on('error', () => done(false));
      });
      req.on('error', () => done(false));
      req.end();
    });
  };
}

/** `data` cut at the given offsets (sorted, deduplicated, inside the data). */
function chunked(data: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of at) {
    if (c > from) out.push(data.subarray(from, c));
    from = Math.max(from, c);
  }
  if (from < data.length) out.push(data.subarray(from));
  return out;
}

t.test('the relay, every chunking: a secret never leaves, a near miss always does', async (t) => {
  const send = await relayServer(t);
  const secrets = InjectedSecrets.of([Buffer.from(HEADER), Buffer.from(B64), Buffer.from(`${USER}:${PASSWORD}`), Buffer.from(PASSWORD)])!;
  t.ok(secrets, 'secrets to search');
  const secretForms = [B64, PASSWORD];
  // Bytes of the secrets' own alphabet and prefixes of the secrets: near misses everywhere.
  const byte = fc.constantFrom(...Buffer.from(B64 + PASSWORD + '.')).map((b) => Buffer.from([b]));
  const prefix = fc.constantFrom(...secretForms).chain((s) => fc.integer({ min: 1, max: s.length - 1 }).map((n) => Buffer.from(s.slice(0, n))));
  const noise = fc.array(fc.oneof(byte, prefix), { maxLength: 24 }).map((parts) => Buffer.concat(parts));
  await fc.assert(
    fc.asyncProperty(noise, fc.constantFrom(...secretForms), noise, fc.array(fc.nat(400), { maxLength: 8 }), async (before, secret, after, cuts) => {
      const data = Buffer.concat([before, Buffer.from(secret), after]);
      const r = await send(chunked(data, cuts), secrets);
      const firstAt = data.indexOf(Buffer.from(secret));
      t.equal(r.outcome.reason, 'upstream_credential_echo');
      if (r.status === 502) {
        // Found before any body byte could leave: the head waited, a clean refusal.
        t.equal(JSON.parse(r.body.toString()).error, 'upstream_credential_echo', 'refused');
      } else {
        t.equal(r.complete, false, 'cut');
        // Whatever left is a prefix of what came before the first occurrence.
        t.ok(r.body.length <= firstAt && r.body.equals(data.subarray(0, r.body.length)), 'only bytes before the secret, in order');
      }
    }),
    { numRuns: 150 },
  );
  await fc.assert(
    fc.asyncProperty(noise, noise, fc.array(fc.nat(400), { maxLength: 8 }), async (a, b, cuts) => {
      const data = Buffer.concat([a, b]);
      fc.pre(!secretForms.some((s) => data.includes(Buffer.from(s))));
      const r = await send(chunked(data, cuts), secrets);
      t.equal(r.status, 200);
      t.equal(r.complete, true, 'complete');
      t.ok(r.body.equals(data), 'byte for byte');
      t.equal(r.outcome.bytes, data.length);
    }),
    { numRuns: 150 },
  );
  // Every split of a secret between two chunks, one at a time.
  for (const secret of secretForms) {
    const s = Buffer.from(secret);
    for (let i = 1; i < s.length; i++) {
      const r = await send([Buffer.concat([Buffer.from('..'), s.subarray(0, i)]), Buffer.concat([s.subarray(i), Buffer.from('..')])], secrets);
      t.ok(r.status === 200 && !r.complete && r.body.length <= 2 && r.body.equals(Buffer.from('..').subarray(0, r.body.length)), `split at ${i}: cut, nothing past the 2 bytes before it`);
    }
  }
  // No secrets: the relay passes everything as it comes.
  const plain = await send([Buffer.from(HEADER), Buffer.from(PASSWORD)], undefined);
  t.ok(plain.complete && plain.body.equals(Buffer.from(HEADER + PASSWORD)), 'a provider without secrets: untouched');
});
