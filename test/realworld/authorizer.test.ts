// Authorizer mode end to end: the shipped examples (deploy/authorizer/nginx.conf, Caddyfile)
// on real nginx and Caddy, Keyhole deciding through /v1/authorize, a real upstream that
// demands the provider's credential. Exact bytes, ranges, HEAD, refusals reaching the client
// with Keyhole's reason, revocation on the next request, and the injected credential never
// reaching the client (nor the client's token the upstream).
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { auditFor, baseYaml, dataUrl, startKeyhole } from '../helpers/keyhole.ts';
import { startS3rver, S3RVER_ENV } from '../fixtures/cloud/s3rver.ts';
import { testCerts } from '../helpers/certs.ts';
import { freePort } from '../helpers/redis.ts';
import { authorizerKeyhole, BASIC, SECRETS, UP_TOKEN, type AuthorizerSetup } from '../helpers/authorizer.ts';
import { startCaddyDataPlane, startNginxDataPlane, type DataPlane } from '../helpers/data-planes.ts';

t.setTimeout(180_000);

const IMAGE = randomBytes(300_000);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const OBJECTS = {
  '/files/cat.jpg': { body: IMAGE, type: 'image/jpeg' },
  '/files/page.html': { body: '<script>alert(document.domain)</script>', type: 'text/html' },
  '/b/clip.bin': { body: Buffer.alloc(5000, 3) },
  '/b/dir/a b+é.bin': { body: Buffer.alloc(700, 9) },
  '/o/open.txt': { body: 'open data\n', type: 'text/plain' },
};

const dispatcher = new Agent({ connect: { ca: readFileSync(testCerts().caCert) } });
t.teardown(() => dispatcher.close());

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

async function get(plane: DataPlane, path: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' | 'POST' = 'GET'): Promise<Got> {
  const res = await request(plane.origin + path, { method, headers, dispatcher });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers as Got['headers'], body };
}

/** Everything the client received, as text: no form of the upstream credential may be in it. */
function seen(res: Got): string {
  return JSON.stringify(res.headers) + res.body.toString('latin1');
}

/** A data plane in front of the Keyhole on `port`; nginx keeps connections to `pool`'s storage in the example's upstream group. */
const PLANES: [string, (t: Test, port: number, pool?: { provider: string; server: string }) => Promise<DataPlane>][] = [
  ['nginx', (t, port, pool) => startNginxDataPlane(t, port, pool)],
  ['Caddy', (t, port) => startCaddyDataPlane(t, port)],
];

for (const [name, start] of PLANES) {
  t.test(name, async (t) => {
    const s: AuthorizerSetup = await authorizerKeyhole(t, { objects: OBJECTS });
    const plane = await start(t, Number(new URL(s.k.base).port), { provider: 'corp', server: `127.0.0.1:${s.up.port}` });
    const auth = { authorization: `Bearer ${s.token}` };

    t.test('reads of one provider reuse the data plane\'s connections to the storage', async (t) => {
      const before = s.up.log.length;
      for (let i = 0; i < 4; i++) t.equal((await get(plane, dataUrl('https://data.corp/cat.jpg'), auth)).status, 200);
      const ports = new Set(s.up.log.slice(before).map((r) => r.remotePort));
      t.equal(s.up.log.length - before, 4, 'four reads upstream');
      t.equal(ports.size, 1, `one connection for four sequential reads (${[...ports].join(', ')})`);
    });

    t.test('GET: exact bytes, the upstream credential injected, nothing of it or of the upstream reaches the client', async (t) => {
      const before = s.up.log.length;
      const res = await get(plane, dataUrl('https://data.corp/cat.jpg'), { ...auth, cookie: `__Host-keyhole=${s.token}; other=1` });
      t.equal(res.status, 200, plane.log());
      t.equal(sha(res.body), sha(IMAGE), 'exact bytes');
      t.equal(res.headers['content-type'], 'image/jpeg');
      t.equal(res.headers['x-content-type-options'], 'nosniff');
      t.equal(res.headers['content-security-policy'], "sandbox; default-src 'none'");
      t.equal(res.headers['content-disposition'], 'attachment');
      t.equal(res.headers['set-cookie'], undefined, 'upstream cookies dropped');
      t.equal(res.headers['x-amz-request-id'], undefined);
      t.not(res.headers.server, 'internal-upstream/1.0');
      for (const h of Object.keys(res.headers)) t.notOk(h.startsWith('x-keyhole-'), `no ${h} reaches the client`);
      for (const secret of SECRETS) t.notOk(seen(res).includes(secret), 'no form of the credential reaches the client');
      const upstream = s.up.log.slice(before);
      t.equal(upstream.length, 1, 'one upstream request');
      t.equal(upstream[0]!.url, '/files/cat.jpg');
      t.equal(upstream[0]!.headers.authorization, BASIC, 'the credential Keyhole computed');
      t.equal(upstream[0]!.headers.cookie, undefined, "the client's cookies stay at the data plane");
      t.notOk(JSON.stringify(upstream[0]!.headers).includes(s.token), "the client's token never goes upstream");
      const id = res.headers['x-request-id'] as string;
      t.ok(id, 'the request id reaches the client');
      t.match(await auditFor(s.k, id), { kind: 'authorize', decision: 'allow', provider: 'corp', uri: 'https://data.corp/cat.jpg', status: 200, client: '127.0.0.1' }, 'the decision under the same id');
    });

    t.test('Range and HEAD', async (t) => {
      const part = await get(plane, dataUrl('https://data.corp/cat.jpg'), { ...auth, range: 'bytes=1000-1999' });
      t.equal(part.status, 206);
      t.equal(part.headers['content-range'], `bytes 1000-1999/${IMAGE.length}`);
      t.same(part.body, IMAGE.subarray(1000, 2000), 'exact slice');
      const head = await get(plane, dataUrl('https://data.corp/cat.jpg'), auth, 'HEAD');
      t.equal(head.status, 200);
      t.equal(head.headers['content-length'], String(IMAGE.length));
      t.equal(head.body.length, 0);
      const id = head.headers['x-request-id'] as string;
      t.equal(s.up.log.at(-1)!.method, 'HEAD', 'HEAD upstream');
      t.ok(id);
    });

    t.test('the token in ?token= and a bearer provider; the query never goes upstream', async (t) => {
      const res = await get(plane, dataUrl('https://bearer.corp/clip.bin', s.token));
      t.equal(res.status, 200);
      t.same(res.body, Buffer.alloc(5000, 3));
      const up = s.up.log.at(-1)!;
      t.equal(up.url, '/b/clip.bin');
      t.equal(up.headers.authorization, `Bearer ${UP_TOKEN}`);
      t.notOk(seen(res).includes(UP_TOKEN));
      const odd = await get(plane, dataUrl('https://bearer.corp/dir/a b+é.bin'), auth);
      t.equal(odd.status, 200, 'a name with a space, a plus and UTF-8');
      t.same(odd.body, Buffer.alloc(700, 9));
      // nginx sends Keyhole's encoding as it is; Caddy encodes the decoded path itself (a '+' stays raw): the same name.
      t.equal(decodeURIComponent(s.up.log.at(-1)!.url), '/b/dir/a b+é.bin', 'the same object name upstream');
      if (name === 'nginx') t.equal(s.up.log.at(-1)!.url, '/b/dir/a%20b%2B%C3%A9.bin', 'sent as Keyhole encoded it');
    });

    t.test('a provider without credential: nothing the client sent reaches the upstream as one', async (t) => {
      const res = await get(plane, dataUrl('https://open.corp/open.txt'), { ...auth, 'x-keyhole-authorization': BASIC, 'x-keyhole-upstream-dial': '127.0.0.1:1', 'x-amz-security-token': 'client-made' });
      t.equal(res.status, 200, 'the upstream saw no Authorization (it answers 401 to any)');
      t.equal(res.body.toString(), 'open data\n');
      const up = s.up.log.at(-1)!;
      t.equal(up.headers.authorization, undefined);
      t.equal(up.headers['x-amz-security-token'], undefined);
      t.equal(up.headers['x-keyhole-authorization'], undefined);
    });

    t.test('a document type from the upstream is sandboxed and downloaded, never rendered', async (t) => {
      const res = await get(plane, dataUrl('https://data.corp/page.html'), auth);
      t.equal(res.status, 200);
      t.equal(res.headers['content-security-policy'], "sandbox; default-src 'none'");
      t.equal(res.headers['content-disposition'], 'attachment');
      t.equal(res.headers['x-content-type-options'], 'nosniff');
      if (name === 'nginx') t.equal(res.headers['content-type'], 'text/plain; charset=utf-8', 'a runnable type answered as text');
    });

    t.test("refusals reach the client with Keyhole's status and reason; the upstream is never asked", async (t) => {
      const other = await s.k.token({ scope: ['https://elsewhere.corp/'] });
      const before = s.up.log.length;
      const cases: [string, string, Record<string, string>, number, string][] = [
        ['no token', dataUrl('https://data.corp/cat.jpg'), {}, 401, 'token_missing'],
        ['bad token', dataUrl('https://data.corp/cat.jpg'), { authorization: 'Bearer x.y.z' }, 401, 'token_malformed'],
        ['out of scope', dataUrl('https://data.corp/cat.jpg'), { authorization: `Bearer ${other}` }, 403, 'scope_denied'],
        ['no provider', dataUrl('https://nobody.corp/x.jpg'), auth, 403, 'no_provider'],
        ['traversal', dataUrl('https://data.corp/a/../cat.jpg'), auth, 400, 'uri_traversal'],
        ['local provider', dataUrl('local://files/a.txt'), auth, 501, 'authorizer_unsupported'],
        ['loaded as a script', dataUrl('https://data.corp/cat.jpg'), { ...auth, 'sec-fetch-dest': 'script' }, 403, 'data_destination_refused'],
      ];
      for (const [what, path, headers, status, reason] of cases) {
        const res = await get(plane, path, headers);
        t.equal(res.status, status, `${what}: status`);
        t.equal(JSON.parse(res.body.toString()).error, reason, `${what}: Keyhole's reason in the JSON body`);
        t.ok(res.headers['x-request-id'], `${what}: request id`);
        if (status === 401) t.match(String(res.headers['www-authenticate']), /Bearer realm="keyhole"/, `${what}: WWW-Authenticate`);
        t.match(await auditFor(s.k, JSON.parse(res.body.toString()).requestId), { kind: 'authorize', reason, status }, `${what}: audited under the id the client got`);
      }
      t.equal(s.up.log.length, before, 'no refused request reached the upstream');
      const post = await get(plane, dataUrl('https://data.corp/cat.jpg'), auth, 'POST');
      t.equal(post.status, 405, 'only GET and HEAD are pumped');
    });

    t.test('an object missing upstream: 404 without the upstream page', async (t) => {
      const res = await get(plane, dataUrl('https://data.corp/missing.jpg'), auth);
      t.equal(res.status, 404);
      t.equal(JSON.parse(res.body.toString()).error, 'not_found');
      t.notOk(res.body.toString().includes('internal-host'), "the upstream's own page stays at the data plane");
      t.equal(res.headers['x-upstream-secret'], undefined);
    });

    t.test('revocation takes effect on the next request', async (t) => {
      const token = await s.k.token({ scope: ['https://data.corp/'], jti: `${name}-revoked` });
      t.equal((await get(plane, dataUrl('https://data.corp/cat.jpg'), { authorization: `Bearer ${token}` })).status, 200);
      await s.revoke(`${name}-revoked`);
      const res = await get(plane, dataUrl('https://data.corp/cat.jpg'), { authorization: `Bearer ${token}` });
      t.equal(res.status, 401);
      t.equal(JSON.parse(res.body.toString()).error, 'token_revoked');
    });

    t.test('Keyhole unreachable: the data plane fails closed', async (t) => {
      const orphan = await start(t, await freePort());
      const res = await get(orphan, dataUrl('https://data.corp/cat.jpg'), auth);
      t.ok(res.status >= 500, `refused with ${res.status}`);
      t.not(sha(res.body), sha(IMAGE));
    });
  });
}

// S3 in either mode, header-signed: s3rver verifies SigV4, so a signature over anything but
// what the data plane sends (host, x-amz-date, x-amz-content-sha256; not Range) is refused.
for (const [name, start] of PLANES) {
  t.test(`${name} in front of s3rver: SigV4 computed by Keyhole per request`, async (t) => {
    const s3 = await startS3rver(['labels']);
    t.teardown(() => s3.close());
    const odd = 'img/a b+é.bin';
    await s3.put('labels', 'img/cat.jpg', IMAGE, 'image/jpeg');
    await s3.put('labels', odd, Buffer.alloc(777, 5));
    await s3.put('labels', 'private/x.bin', 'secret');
    const k = await startKeyhole(baseYaml(`providers:\n${s3.providerItem({ name: 'store', bucket: 'labels', prefixes: ['img/'] })}authorizer:\n  peers: [127.0.0.1]\n`), { env: S3RVER_ENV });
    t.teardown(() => k.close());
    // Through nginx's storage group: the Host SigV4 signed is the storage's, not the group's name.
    const plane = await start(t, Number(new URL(k.base).port), { provider: 'store', server: new URL(s3.endpoint).host });
    const auth = { authorization: `Bearer ${await k.token({ scope: ['s3://labels/'] })}` };

    const whole = await get(plane, dataUrl('s3://labels/img/cat.jpg'), auth);
    t.equal(whole.status, 200, plane.log());
    t.equal(sha(whole.body), sha(IMAGE), 'exact bytes');
    t.notOk(seen(whole).includes(S3RVER_ENV.S3_SECRET) || seen(whole).includes('AWS4-HMAC-SHA256'), 'no signature reaches the client');
    const part = await get(plane, dataUrl('s3://labels/img/cat.jpg'), { ...auth, range: 'bytes=5-104' });
    t.equal(part.status, 206, 'Range is not signed: the client range passes');
    t.same(part.body, IMAGE.subarray(5, 105));
    const strange = await get(plane, dataUrl(`s3://labels/${odd}`), auth);
    t.equal(strange.status, 200, 'a key with a space, a plus and UTF-8');
    t.same(strange.body, Buffer.alloc(777, 5));
    const outside = await get(plane, dataUrl('s3://labels/private/x.bin'), auth);
    t.equal(outside.status, 403);
    t.equal(JSON.parse(outside.body.toString()).error, 'key_not_allowed', "the provider's allowlist decides as on /v1/data");
  });
}
