// A client-given URI is audited through one redaction, whichever route took it: a token, a
// presigned URL's signature or a password in it never reaches a log line or the audit
// stream — refused raw (unparsed) or parsed (an encoded presigned URL is a valid data URI).
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { AuditLog, type AuditEvent, type AuditSink } from '../../src/observe/audit.ts';
import { auditFor, dataUrl, filesProviderYaml, keyholeWith, tempFiles } from '../helpers/keyhole.ts';

const root = tempFiles('audit-redaction');

// Long random values: a short literal could turn up in a timestamp or a request id.
const secret = () => randomBytes(16).toString('hex');
const S = Array.from({ length: 7 }, secret);
/** Client-given URIs carrying credentials, with the reason each is refused for. */
const HOSTILE: [string, string][] = [
  [`https://bucket.s3.example/a.jpg?X-Amz-Signature=${S[0]}&X-Amz-Credential=AKIA%2F${S[1]}`, 'uri_query'],
  [`local://files/a.txt?token=${S[2]}`, 'uri_query'],
  [`https://user:${S[3]}@data.example/a.jpg`, 'uri_userinfo'],
  // An encoded presigned URL parses: its canonical form still holds the signature.
  [`https://acct.blob.core.windows.net/c/b.jpg%3Fsv%3D2024%26sig%3D${S[4]}`, 'no_provider'],
  [`https://bucket.s3.example/a.jpg%253FX-Amz-Signature%253D${S[5]}`, 'uri_double_encoded'],
  [`local://files/a.txt%3Faccess_token%3D${S[6]}`, 'scope_denied'],
];

const { k, token } = await keyholeWith(t, filesProviderYaml(root), ['local://files/a.txt']);

const noSecretIn = (t: Test, text: string, what: string) => {
  for (const [i, s] of S.entries()) t.notOk(text.includes(s), `${what}: secret ${i} appears nowhere`);
};

t.test('POST /v1/presign: refused URIs are audited redacted', async (t) => {
  const res = await k.get('/v1/presign', { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, 'POST', JSON.stringify({ uris: HOSTILE.map(([u]) => u) }));
  t.equal(res.status, 200);
  const results = (JSON.parse(res.body.toString()) as { results: { error?: string }[] }).results;
  t.same(
    results.map((r) => r.error),
    HOSTILE.map(([, reason]) => reason),
    'each refused with its reason',
  );
  const id = res.headers['x-request-id'] as string;
  const audits = k.audits().filter((a) => a.id === id);
  t.equal(audits.length, HOSTILE.length, 'one audit event per URI');
  for (const a of audits) t.match(a.uri, /\[redacted\]/, `audited: ${String(a.uri)}`);
  noSecretIn(t, k.rawLogs(), 'the log');
});

t.test('GET /v1/data: refused URIs are audited redacted', async (t) => {
  for (const [uri, reason] of HOSTILE) {
    const res = await k.get(dataUrl(uri), { authorization: `Bearer ${token}` });
    t.equal(JSON.parse(res.body.toString()).error, reason, `${reason}`);
    const audit = await auditFor(k, res.headers['x-request-id'] as string);
    t.match(audit.uri, /\[redacted\]/, `audited: ${String(audit.uri)}`);
  }
  noSecretIn(t, k.rawLogs(), 'the log');
});

t.test('AuditLog.write redacts for every sink; a URI with nothing to redact is handed on as it is', async (t) => {
  const pushed: AuditEvent[] = [];
  const sink: AuditSink = { push: (e) => pushed.push(e), close: () => Promise.resolve() };
  const log = new AuditLog(undefined, sink);
  const base: AuditEvent = { id: 'r', kind: 'data', sub: 'alice', jti: undefined, org: undefined, provider: undefined, uri: undefined, decision: 'deny', reason: 'uri_query', status: 400, bytes: 0, aborted: false, ms: 0, client: undefined, tokenSource: 'header' };
  const hostile = { ...base, uri: HOSTILE[0]![0] };
  log.write(hostile);
  t.equal(pushed[0]!.uri, 'https://bucket.s3.example/a.jpg?X-Amz-Signature=[redacted]&X-Amz-Credential=[redacted]', 'the stream gets the redacted URI');
  t.equal(hostile.uri, HOSTILE[0]![0], "the caller's event is left alone");
  const plain = { ...base, uri: 'local://files/a%20b.txt' };
  log.write(plain);
  t.equal(pushed[1], plain, 'nothing to redact: the event object itself');
});
