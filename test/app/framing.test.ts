// requestFraming() on its own: the checks Node's parser leaves to us. The server-level
// head checks may refuse some of these first; this proves the proxy's own line holds.
import t from 'tap';
import type { IncomingMessage } from 'node:http';
import { requestFraming } from '../../src/app/framing.ts';

const head = (rawHeaders: string[], minor = 1) => ({ rawHeaders, httpVersionMajor: 1, httpVersionMinor: minor }) as unknown as IncomingMessage;

t.test('refuses what is ambiguous', async (t) => {
  const cases: [string, string[], number?][] = [
    ['CL and TE', ['Content-Length', '4', 'Transfer-Encoding', 'chunked']],
    ['empty TE beside CL', ['Transfer-Encoding', '', 'Content-Length', '4']],
    ['repeated CL', ['Content-Length', '4', 'content-length', '4']],
    ['repeated TE', ['Transfer-Encoding', 'chunked', 'TRANSFER-ENCODING', 'chunked']],
    ['gzip, chunked', ['Transfer-Encoding', 'gzip, chunked']],
    ['identity, chunked', ['Transfer-Encoding', 'identity, chunked']],
    ['xchunked', ['Transfer-Encoding', 'xchunked']],
    ['TE on HTTP/1.0', ['Transfer-Encoding', 'chunked'], 0],
    ['CL with sign', ['Content-Length', '+4']],
    ['CL list', ['Content-Length', '4, 4']],
    ['CL huge', ['Content-Length', '9999999999999999999']],
  ];
  for (const [name, raw, minor] of cases) {
    const f = requestFraming(head(raw, minor));
    t.equal(f.ok, false, name);
  }
});

t.test('accepts plain framings', async (t) => {
  t.same(requestFraming(head([])), { ok: true, length: undefined, chunked: false });
  t.same(requestFraming(head(['Content-Length', '005'])), { ok: true, length: 5, chunked: false });
  t.same(requestFraming(head(['Transfer-Encoding', 'Chunked '])), { ok: true, length: undefined, chunked: true });
});
