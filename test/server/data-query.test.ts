// dataQuery reads ?uri= and ?token= by hand when the query is plain and hands anything else
// to URLSearchParams. Whichever path a query takes, the answer must be URLSearchParams' own:
// a fast path that read a parameter differently would let a URI or token past the checks
// in a form nothing else in Keyhole reads it as.
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { dataQuery, type DataQuery } from '../../src/server/data-route.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 400);

/** The specification: what URLSearchParams reads from everything after the first '?'. */
function reference(url: string): DataQuery {
  const q = url.indexOf('?');
  if (q === -1) return { uri: null, token: null, ambiguous: false };
  const p = new URLSearchParams(url.slice(q + 1));
  const uris = p.getAll('uri');
  const tokens = p.getAll('token');
  return { uri: uris[0] ?? null, token: tokens[0] ?? null, ambiguous: uris.length > 1 || tokens.length > 1 };
}

const same = (a: DataQuery, b: DataQuery): boolean => a.uri === b.uri && a.token === b.token && a.ambiguous === b.ambiguous;

function check<T>(t: Test, name: string, arb: fc.Arbitrary<T>, pred: (v: T) => boolean): void {
  const res = fc.check(fc.property(arb, pred), { numRuns: RUNS });
  t.notOk(res.failed, `${name} (${res.numRuns} cases)${res.failed ? ` — counterexample ${JSON.stringify(res.counterexample)}: ${String(res.errorInstance)}` : ''}`);
}

// The names themselves, their percent- and plus-spellings, separators, malformed and
// non-UTF-8 escapes, an encoded surrogate, a raw latin1 byte, and marks that end a URL elsewhere.
const PIECES = ['uri', 'token', 'Uri', 'TOKEN', '%75ri', 'ur%69', '%75%72%69', 'tok%65n', 'u+ri', 'uri+', '+uri', 'uri%20', '=', '==', '&', '&&', '+', '%2B', '%', '%zz', '%2', '%C3%A9', '%C3', '%ED%A0%80', '%F0%9F%98%80', '%F0%9F%98', '%C0%AE', '%EF%BB%BF', 'é', '%00', '\u0000', '#', '?', ';', '%26', '%3D', ' ', 'a', 's3://b/k.jpg', 'eyJ.x.y'];

/** Every latin1 character: what Node's HTTP parser can put in req.url. */
const latin1Char = fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c));

const query = (free: fc.Arbitrary<string>, pieces: readonly string[] = PIECES): fc.Arbitrary<string> =>
  fc
    .tuple(
      // What follows the first '?': URLSearchParams drops one leading '?' from its input.
      fc.constantFrom('', '', '', '?', '?uri=', '?token=', '??', '&?'),
      fc.array(fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...pieces) }, fc.string({ unit: 'grapheme', maxLength: 12 }).map(encodeURIComponent), free), { maxLength: 14 }),
    )
    .map(([lead, rest]) => '/v1/data?' + lead + rest.join(''));

t.test('dataQuery agrees with URLSearchParams on anything an HTTP request line can carry', async (t) => {
  check(t, 'latin1 queries', query(fc.string({ unit: latin1Char, maxLength: 12 })), (url) => same(dataQuery(url), reference(url)));
  // Whole URLs, with or without a '?', and queries of nothing but separators and names.
  check(t, 'latin1 URLs', fc.string({ unit: fc.oneof(latin1Char, fc.constantFrom('?', '&', '=', 'uri', 'token', '%', '+')), maxLength: 60 }), (url) => same(dataQuery(url), reference(url)));
});

t.test('dataQuery agrees with URLSearchParams on any JavaScript string', async (t) => {
  // Characters past latin1 and lone surrogates: not from Node's HTTP parser, but dataQuery
  // is exported, and its contract is URLSearchParams' reading of any string.
  const beyondLatin1 = [...PIECES, '\ud800', '\udbff', '\udc00', '\udfff', '\ud83d', '\ude00', '\u0100', '漢', '😀', '\uffff'];
  check(t, 'arbitrary strings', query(fc.string({ unit: 'binary', maxLength: 12 }), beyondLatin1), (url) => same(dataQuery(url), reference(url)));
});

t.test('dataQuery: explicit cases', async (t) => {
  const cases: [string, DataQuery, string][] = [
    ['/v1/data', { uri: null, token: null, ambiguous: false }, 'no query'],
    ['/v1/data?', { uri: null, token: null, ambiguous: false }, 'empty query'],
    ['/v1/data?uri=s3://b/k.jpg&token=a.b.c', { uri: 's3://b/k.jpg', token: 'a.b.c', ambiguous: false }, 'both, plain'],
    ['/v1/data?uri=a&uri=b', { uri: 'a', token: null, ambiguous: true }, 'repeated uri'],
    ['/v1/data?token=1&uri=a&token=2', { uri: 'a', token: '1', ambiguous: true }, 'repeated token'],
    ['/v1/data?uri=a&%75ri=b', { uri: 'a', token: null, ambiguous: true }, 'repeated through a percent-encoded name'],
    ['/v1/data?uri=', { uri: '', token: null, ambiguous: false }, 'empty value'],
    ['/v1/data?uri', { uri: '', token: null, ambiguous: false }, 'name without ='],
    ['/v1/data?uri&uri=x', { uri: '', token: null, ambiguous: true }, 'a bare name counts as a value'],
    ['/v1/data?uri=a+b%20c', { uri: 'a b c', token: null, ambiguous: false }, '+ and %20 are spaces in values'],
    ['/v1/data?uri=a%2Bb', { uri: 'a+b', token: null, ambiguous: false }, '%2B is a plus'],
    ['/v1/data?uri=a=b&token=c%3Dd', { uri: 'a=b', token: 'c=d', ambiguous: false }, 'only the first = splits'],
    ['/v1/data?uri=a%26token=x', { uri: 'a&token=x', token: null, ambiguous: false }, '%26 does not split'],
    ['/v1/data?%75ri=x&tok%65n=y', { uri: 'x', token: 'y', ambiguous: false }, 'percent-encoded names'],
    ['/v1/data?u+ri=x&uri+=y', { uri: null, token: null, ambiguous: false }, '+ in a name is a space: not uri'],
    ['/v1/data?URI=x', { uri: null, token: null, ambiguous: false }, 'names are case-sensitive'],
    ['/v1/data??uri=x', { uri: 'x', token: null, ambiguous: false }, "URLSearchParams drops one leading '?'"],
    ['/v1/data??uri=x&%61=1', { uri: 'x', token: null, ambiguous: false }, "one leading '?' dropped, whatever else the query holds"],
    ['/v1/data???uri=x', { uri: null, token: null, ambiguous: false }, "only one: the name is '?uri'"],
    ['/v1/data?&?uri=x', { uri: null, token: null, ambiguous: false }, "a '?' after the start is part of the name"],
    ['/v1/data?&&uri=x&&', { uri: 'x', token: null, ambiguous: false }, 'empty pieces are skipped'],
    ['/v1/data?uri=%zz%2', { uri: '%zz%2', token: null, ambiguous: false }, 'malformed escapes stay as written'],
    ['/v1/data?uri=%', { uri: '%', token: null, ambiguous: false }, 'a lone %'],
    ['/v1/data?uri=%C3%A9%F0%9F%98%80', { uri: 'é😀', token: null, ambiguous: false }, 'UTF-8 escapes'],
    ['/v1/data?uri=%C3x', { uri: '\ufffdx', token: null, ambiguous: false }, 'truncated UTF-8: replacement character'],
    ['/v1/data?uri=%ED%A0%80', { uri: '\ufffd\ufffd\ufffd', token: null, ambiguous: false }, 'an encoded surrogate is not UTF-8'],
    ['/v1/data?uri=%C0%AE', { uri: '\ufffd\ufffd', token: null, ambiguous: false }, 'overlong UTF-8'],
    ['/v1/data?uri=\u00e9', { uri: '\u00e9', token: null, ambiguous: false }, 'a raw latin1 character'],
    ['/v1/data?uri=a%00b', { uri: 'a\u0000b', token: null, ambiguous: false }, 'NUL is decoded (the URI parser refuses it)'],
    ['/v1/data?uri=x#y', { uri: 'x#y', token: null, ambiguous: false }, 'a # is part of the value'],
    ['/v1/data?uri=\ud800', { uri: '\ufffd', token: null, ambiguous: false }, 'a lone surrogate reads as U+FFFD'],
  ];
  for (const [url, want, why] of cases) {
    t.same(reference(url), want, `reference: ${why}`);
    t.same(dataQuery(url), want, why);
  }
});
