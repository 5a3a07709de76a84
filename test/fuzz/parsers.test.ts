// Property-based fuzzing (fast-check) of every parser that sees hostile input: data URIs,
// provider matching, token extraction, Range and conditional headers. No input may throw
// anything but a UriError carrying a known reason code; what is accepted is canonical,
// confined and stable. FUZZ_RUNS sets the number of cases per property (CI: the default;
// `npm run fuzz`: many more).
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { resolve, sep } from 'node:path';
import { cookieValue, extractToken, MAX_TOKEN_LENGTH } from '../../src/auth/extract.ts';
import { ProviderRegistry } from '../../src/providers/registry.ts';
import type { Provider } from '../../src/providers/types.ts';
import { encodeSegment, ownsUri, parseDataUri, UriError, type DataUri } from '../../src/uri.ts';
import { REASONS } from '../../src/reasons.ts';
import { Allowlist } from '../../src/providers/cloud/allowlist.ts';
import { encodeKey } from '../../src/providers/cloud/encode.ts';
import { CloudRefusal } from '../../src/providers/cloud/errors.ts';
import { notModified, parseRange, rangeStillValid } from '../../src/http/range.ts';
import { Tally } from '../security/tally.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 400);
const tally = new Tally('fuzz: parsers');

// Pieces that have broken URI handling somewhere: encodings of dot, slash, backslash and
// NUL, overlong UTF-8, double encoding, userinfo, ports, query and fragment marks.
const NASTY = ['..', '.', '%2e', '%2E%2e', '.%2e', '%2e.', '%2f', '%2F', '%5c', '%5C', '\\', '%00', '\u0000', '%25', '%252e', '%252f', '%25%32%65', '/', '//', '@', ':', '?', '#', '%', '%zz', '%c0%ae', '%c0%af', '%e0%80%ae', '\u202e', '\u2024', '\uff0e', 'é', '%C3%A9', ' ', '%20', ';', '%3b', '\r', '%0d%0a', '\t', '\u0085', 'a', 'b.jpg', 'x y', '~', '%7e', '*', "'", '(', '+', '%2b', '&', '='];
const nastyText = fc.array(fc.constantFrom(...NASTY), { minLength: 0, maxLength: 8 }).map((a) => a.join(''));
const scheme = fc.constantFrom('s3', 'S3', 'gs', 'https', 'HTTP', 'local', 'azure-blob', 'redis', 'x+y', '1bad', '');
const authority = fc.oneof(fc.constantFrom('bucket', 'Bucket', 'data.corp', 'host:8080', 'user@host', 'user:pw@host', '', 'a%2eb', 'ex ample', '[::1]', '127.0.0.1', 'b..c', '-b', 'b-'), nastyText);
const structuredUri = fc
  .tuple(scheme, fc.constantFrom('://', ':/', ':', '://'), authority, fc.array(fc.oneof(nastyText, fc.string()), { maxLength: 6 }), fc.constantFrom('', '/'))
  .map(([s, sepr, a, segs, trail]) => `${s}${sepr}${a}/${segs.join('/')}${trail}`);
const anyUri = fc.oneof(structuredUri, fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ unit: 'grapheme-ascii', maxLength: 300 }));

/** Runs a property; a failure is reported with its counterexample, and counted. */
function check<T>(t: Test, name: string, arb: fc.Arbitrary<T>, pred: (v: T) => boolean | void): void {
  let tried = 0;
  const res = fc.check(
    fc.property(arb, (v) => {
      tried++;
      return pred(v);
    }),
    { numRuns: RUNS },
  );
  tally.tried += tried - 1;
  tally.record(`${name}${res.failed ? `: ${JSON.stringify(res.counterexample)}` : ''}`, !res.failed);
  t.notOk(res.failed, `${name} (${res.numRuns} cases)${res.failed ? ` — counterexample ${JSON.stringify(res.counterexample)}: ${String(res.errorInstance)}` : ''}`);
}

function parseOrReason(raw: string): DataUri | UriError {
  try {
    return parseDataUri(raw);
  } catch (err) {
    if (err instanceof UriError) return err;
    throw err; // anything else is a bug: fast-check reports it
  }
}

// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\\/]/;

t.test('URI parser: never throws anything but a UriError with a known reason code', async (t) => {
  check(t, 'parse total', anyUri, (raw) => {
    const r = parseOrReason(raw);
    return r instanceof UriError ? r.reason in REASONS : true;
  });
});

t.test('URI parser: what it accepts is clean, canonical and idempotent', async (t) => {
  check(t, 'accepted URIs are canonical', anyUri, (raw) => {
    const r = parseOrReason(raw);
    if (r instanceof UriError) return true;
    for (const seg of r.segments) {
      if (seg === '' || seg === '.' || seg === '..' || FORBIDDEN.test(seg) || /%[0-9a-fA-F]{2}/.test(seg)) return false;
    }
    const again = parseDataUri(r.canonical);
    return again.canonical === r.canonical && JSON.stringify(again.segments) === JSON.stringify(r.segments) && r.canonical === r.canonical.replace(/^[^:]*/, (s) => s.toLowerCase());
  });
});

t.test('URI parser: encodeSegment round-trips any segment it does not refuse', async (t) => {
  const segment = fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }), nastyText.filter((s) => s.length > 0));
  check(t, 'segment round trip', fc.array(segment, { minLength: 1, maxLength: 5 }), (segs) => {
    const r = parseOrReason(`s3://bucket/${segs.map(encodeSegment).join('/')}`);
    if (r instanceof UriError) return ['uri_traversal', 'uri_forbidden_char', 'uri_double_encoded', 'uri_too_long', 'uri_invalid'].includes(r.reason);
    return JSON.stringify(r.segments) === JSON.stringify(segs);
  });
});

t.test('local confinement: an accepted path joined under a root never leaves it', async (t) => {
  const root = resolve('/srv/keyhole-root');
  check(t, 'lexical confinement', anyUri, (raw) => {
    const r = parseOrReason(raw);
    if (r instanceof UriError) return true;
    const joined = resolve(root + sep + r.segments.join(sep));
    return joined === root || joined.startsWith(root + sep);
  });
});

const stub = (match: string): Provider => ({
  name: match,
  kind: 'stub',
  match,
  orgs: undefined,
  projects: undefined,
  serve: () => Promise.resolve(),
  close: () => Promise.resolve(),
});

t.test('provider matching: the owner is a segment-boundary prefix, the longest, and rest is exact', async (t) => {
  const seg = fc.constantFrom('img', 'img-private', 'imgs', 'a', 'A', 'b', '%2e', 'x y', 'é');
  const prefixes = fc.uniqueArray(
    fc.tuple(fc.constantFrom('s3://bkt', 's3://bkt2', 'gs://bkt'), fc.array(seg, { maxLength: 3 }), fc.boolean()).map(([base, segs, slash]) => {
      const r = parseOrReason(`${base}/${segs.join('/')}${slash && segs.length ? '/' : ''}`);
      return r instanceof UriError ? `${base}/` : r.canonical;
    }),
    { minLength: 1, maxLength: 6 },
  );
  const uri = fc.tuple(fc.constantFrom('s3://bkt', 's3://bkt2', 'gs://bkt', 's3://bk'), fc.array(seg, { maxLength: 5 })).map(([b, s]) => `${b}/${s.join('/')}`);
  check(t, 'registry resolve', fc.tuple(prefixes, uri), ([matches, raw]) => {
    const u = parseOrReason(raw);
    if (u instanceof UriError) return true;
    const registry = new ProviderRegistry(matches.map(stub));
    const owners = matches.filter((m) => ownsUri(m, u.canonical));
    let hit: ReturnType<ProviderRegistry['resolve']>;
    try {
      hit = registry.resolve(u);
    } catch (err) {
      // A folder (ends in '/') is refused whoever owns it; nothing else throws.
      return err instanceof UriError && err.reason === 'uri_folder' && u.canonical.endsWith('/');
    }
    if (!hit) return owners.length === 0;
    const m = hit.provider.match;
    const boundary = u.canonical === m || m.endsWith('/') || u.canonical[m.length] === '/';
    const longest = owners.every((o) => o.length <= m.length);
    const prefixSegs = parseDataUri(m).segments;
    const exactRest = JSON.stringify([...prefixSegs, ...hit.rest]) === JSON.stringify(u.segments);
    return u.canonical.startsWith(m) && boundary && longest && exactRest;
  });
});

t.test('token extraction: any headers and query, never a throw, bounded token, right source', async (t) => {
  const header = fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.constantFrom('Bearer ', 'bearer x', 'BEARER  a.b.c ', 'Basic abc', 'Bearer', ''), fc.string({ maxLength: 10 }).map((s) => `Bearer ${s.repeat(1000)}`));
  const cookie = fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.array(fc.tuple(fc.constantFrom('__Host-keyhole', 'x', ' __Host-keyhole', '__Host-keyhole ', ''), fc.string({ maxLength: 30 })), { maxLength: 4 }).map((kv) => kv.map(([k, v]) => `${k}=${v}`).join('; ')));
  check(t, 'extract', fc.tuple(fc.option(header), fc.option(cookie), fc.option(fc.string({ unit: 'binary', maxLength: 9000 }))), ([auth, ck, q]) => {
    const headers = { ...(auth !== null ? { authorization: auth } : {}), ...(ck !== null ? { cookie: ck } : {}) };
    const got = extractToken(headers, q, '__Host-keyhole');
    cookieValue(ck ?? undefined, '__Host-keyhole');
    if (!got) return true;
    if (got.token.length > MAX_TOKEN_LENGTH + 1) return false;
    if (got.source === 'header') return auth !== null && auth.slice(0, 7).toLowerCase() === 'bearer ';
    return true;
  });
});

t.test('Range: any header and size gives full, unsatisfiable, or a range inside the object', async (t) => {
  const num = fc.oneof(fc.constant(''), fc.nat({ max: 2_000_000 }).map(String), fc.bigInt({ min: 0n, max: 10n ** 20n }).map(String), fc.constantFrom('-1', '1e3', '0x10', ' 5', '00', '9'.repeat(16)));
  const header = fc.oneof(
    fc.tuple(fc.constantFrom('bytes=', 'Bytes=', 'bytes =', 'items=', 'bytes=='), num, fc.constantFrom('-', '--', ''), num, fc.constantFrom('', ',0-1', ', 5-', ' ')).map((p) => p.join('')),
    fc.string({ unit: 'binary', maxLength: 60 }),
  );
  check(t, 'parseRange', fc.tuple(fc.option(header), fc.oneof(fc.nat({ max: 5000 }), fc.constant(0), fc.nat({ max: Number.MAX_SAFE_INTEGER }))), ([h, size]) => {
    const r = parseRange(h ?? undefined, size);
    if (r.kind === 'partial') return Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end) && r.start >= 0 && r.start <= r.end && r.end < size;
    return r.kind === 'full' || r.kind === 'unsatisfiable';
  });
  const validators = { etag: '"abc-1"', lastModified: new Date(1_700_000_000_000) };
  const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 80 }), fc.constantFrom('*', '"abc-1"', 'W/"abc-1"', ' "abc-1" , x', 'Tue, 14 Nov 2023 22:13:20 GMT', 'not a date'));
  check(t, 'conditionals', fc.tuple(fc.option(text), fc.option(text), fc.option(text)), ([inm, ims, ir]) => {
    const headers = { ...(inm !== null ? { 'if-none-match': inm } : {}), ...(ims !== null ? { 'if-modified-since': ims } : {}), ...(ir !== null ? { 'if-range': ir } : {}) };
    return typeof notModified(headers, validators) === 'boolean' && typeof rangeStillValid(headers, validators) === 'boolean';
  });
});

t.test('cloud object keys: an accepted URI signs a path that cannot climb, query or re-split', async (t) => {
  const allow = new Allowlist([{ name: 'bkt', prefixes: ['images/', 'audio/'] }, { name: 'open' }]);
  check(t, 'cloud keys', fc.tuple(fc.constantFrom('s3://bkt/', 's3://open/', 's3://other/', 'gs://bkt/'), fc.array(fc.oneof(nastyText, fc.constantFrom('images', 'audio', 'images-private')), { maxLength: 5 })), ([base, segs]) => {
    const u = parseOrReason(base + segs.join('/'));
    if (u instanceof UriError) return u.reason in REASONS;
    const key = u.segments.join('/');
    try {
      allow.check({ bucket: u.authority, key });
    } catch (err) {
      if (!(err instanceof CloudRefusal) || !(err.reason in REASONS)) return false;
      return true;
    }
    if (u.authority === 'bkt' && !(key.startsWith('images/') || key.startsWith('audio/'))) return false;
    const path = encodeKey(key);
    const parts = path.split('/');
    return !/[?#\\]/.test(path) && parts.every((p) => p !== '' && p !== '.' && p !== '..') && JSON.stringify(parts.map(decodeURIComponent)) === JSON.stringify(u.segments);
  });
});

t.test('hostile inputs tally', async (t) => {
  t.comment(`FUZZ_RUNS=${RUNS} per property`);
  tally.report(t);
});
