// Data URI parsing and canonical form: everything downstream trusts what this produces.
import t from 'tap';
import fc from 'fast-check';
import { canonicalPrefix, encodeSegment, ownsUri, parseDataUri, UriError } from '../src/uri.ts';

const reason = (raw: string, max?: number) => {
  try {
    parseDataUri(raw, max);
    return 'ok';
  } catch (err) {
    return err instanceof UriError ? err.reason : 'threw';
  }
};

t.test('canonical form', async (t) => {
  t.same(parseDataUri('S3://Bucket/Img/a%20b.JPG'), { scheme: 's3', authority: 'bucket', segments: ['Img', 'a b.JPG'], canonical: 's3://bucket/Img/a%20b.JPG' });
  t.equal(parseDataUri('https://data.corp:8443/x/').canonical, 'https://data.corp:8443/x/');
  t.equal(parseDataUri('https://data.corp').canonical, 'https://data.corp/');
  t.equal(parseDataUri('local://files/%41%62').canonical, 'local://files/Ab', 'unreserved characters decoded');
  t.equal(parseDataUri("gs://b/it's").canonical, 'gs://b/it%27s');
  t.equal(parseDataUri('gs://b/ü').canonical, 'gs://b/%C3%BC');
  t.equal(parseDataUri('redis:///key').authority, '');
});

t.test('refusals', async (t) => {
  const cases: [string, string][] = [
    ['', 'uri_missing'],
    ['relative/path', 'uri_invalid'],
    ['s3:/bucket/x', 'uri_invalid'],
    ['s3://b/../x', 'uri_traversal'],
    ['s3://b/./x', 'uri_traversal'],
    ['s3://b/%2e%2e/x', 'uri_traversal'],
    ['s3://b/%2E/x', 'uri_traversal'],
    ['s3://b/a%2fb', 'uri_traversal'],
    ['s3://b/a%5cb', 'uri_forbidden_char'],
    ['s3://b/a\\b', 'uri_forbidden_char'],
    ['s3://b/a%00', 'uri_forbidden_char'],
    ['s3://b/a%0d%0a', 'uri_forbidden_char'],
    ['s3://b/a\nb', 'uri_forbidden_char'],
    ['s3://b/a%7f', 'uri_forbidden_char'],
    ['s3://b/a%c2%85', 'uri_forbidden_char'],
    ['s3://b/a%252e', 'uri_double_encoded'],
    ['s3://b/a%zz', 'uri_invalid'],
    ['s3://b/a%e0%80', 'uri_invalid'],
    ['s3://b//a', 'uri_empty_segment'],
    ['s3://b/a//', 'uri_empty_segment'],
    ['s3://b/a?x=1', 'uri_query'],
    ['s3://b/a#f', 'uri_query'],
    ['https://u:p@host/a', 'uri_userinfo'],
    ['https://@host/a', 'uri_userinfo'],
    ['https://ho%73t/a', 'uri_invalid'],
    ['https://-host/a', 'uri_invalid'],
    ['https://host:99999999/a', 'uri_invalid'],
    ['https://[::1]/a', 'uri_invalid'],
    ['s3://b/' + 'a'.repeat(100), 'uri_too_long'],
  ];
  for (const [raw, expected] of cases) t.equal(reason(raw, raw.startsWith('s3://b/aaaa') ? 64 : undefined), expected, JSON.stringify(raw));
});

t.test('ownsUri: segment boundaries', async (t) => {
  t.ok(ownsUri('s3://b/img/', 's3://b/img/a.jpg'));
  t.ok(ownsUri('s3://b/img', 's3://b/img/a.jpg'));
  t.ok(ownsUri('s3://b/img', 's3://b/img'));
  t.notOk(ownsUri('s3://b/img', 's3://b/img-private/a.jpg'));
  t.notOk(ownsUri('s3://b/img/', 's3://b/img'));
  t.notOk(ownsUri('s3://b/', 's3://bb/x'));
  t.equal(canonicalPrefix('S3://B/Img/'), 's3://b/Img/');
});

t.test('property: canonical form is a fixed point, and segments round-trip', async () => {
  fc.assert(
    fc.property(fc.array(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 5 }), (segs) => {
      const raw = `s3://bucket/${segs.map(encodeSegment).join('/')}`;
      let parsed;
      try {
        parsed = parseDataUri(raw);
      } catch (err) {
        if (err instanceof UriError) return true; // refused inputs are fine; accepted ones must be stable
        throw err;
      }
      const again = parseDataUri(parsed.canonical);
      return again.canonical === parsed.canonical && again.segments.every((s, i) => s === segs[i]) && !again.segments.some((s) => s === '..' || s.includes('/'));
    }),
    { numRuns: 500 },
  );
});
