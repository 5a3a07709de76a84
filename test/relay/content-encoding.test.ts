// An object stored compressed keeps its Content-Encoding through Keyhole, consistently for
// GET, HEAD and Range: Content-Length, Content-Range and the bytes are all those of the
// encoded representation (RFC 9110 §8.4, §14), so a client decodes exactly what it got.
// Real peers: nginx with gzip_static always (sends its .gz whatever the client accepts)
// and an S3 server holding an object uploaded with Content-Encoding: gzip (proxy mode).
import t, { type Test as Tap } from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { dataUrl, keyholeWith } from '../helpers/keyhole.ts';
import { httpProviderItem } from '../helpers/upstream.ts';
import { startNginx } from '../fixtures/nginx.ts';
import { startS3rver, S3RVER_ENV } from '../fixtures/cloud/s3rver.ts';
import { request } from 'undici';

const CSV = Buffer.from(Array.from({ length: 400 }, (_, i) => `row${i},${(i * 37) % 101},label-${i % 7}\n`).join(''));
const GZ = gzipSync(CSV, { level: 9 });

type Answer = { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer };

function checkEncoded(t: Tap, label: string, full: Answer, head: Answer): void {
  t.equal(full.status, 200, `${label}: GET 200`);
  t.equal(full.headers['content-encoding'], 'gzip', `${label}: GET says how the bytes are encoded`);
  t.equal(full.headers['content-length'], String(GZ.length), `${label}: the encoded length`);
  t.ok(full.body.equals(GZ), `${label}: the encoded bytes, untouched`);
  t.ok(gunzipSync(full.body).equals(CSV), `${label}: which decode to the object`);
  t.equal(full.headers['content-type'], 'text/csv', `${label}: the type of what they decode to`);
  t.equal(head.status, 200, `${label}: HEAD 200`);
  t.equal(head.headers['content-encoding'], 'gzip', `${label}: HEAD says the same`);
  t.equal(head.headers['content-length'], String(GZ.length), `${label}: HEAD reports the encoded length`);
  t.equal(head.body.length, 0);
}

t.test('nginx gzip_static always: the .gz is sent with its encoding, to GET and HEAD alike', async (t) => {
  const nginx = await startNginx(`location /data/ { gzip_static always; types { text/csv csv; } }`);
  t.teardown(() => nginx.stop());
  mkdirSync(join(nginx.root, 'data'));
  writeFileSync(join(nginx.root, 'data', 'table.csv'), CSV);
  writeFileSync(join(nginx.root, 'data', 'table.csv.gz'), GZ);
  // The peer itself: Keyhole asks with accept-encoding: identity and still gets gzip.
  const direct = await request(`${nginx.origin}/data/table.csv`, { headers: { 'accept-encoding': 'identity' } });
  t.equal(direct.headers['content-encoding'], 'gzip', 'nginx sends its .gz even to an identity client');
  await direct.body.dump();

  const { k, auth } = await keyholeWith(t, `providers:\n${httpProviderItem('web', 'https://web.corp/', `${nginx.origin}/`)}`, ['https://web.corp/']);
  const url = dataUrl('https://web.corp/data/table.csv');
  checkEncoded(t, 'nginx', await k.get(url, auth), await k.get(url, auth, 'HEAD'));
  // nginx serves no ranges of a gzip_static file: the whole encoded object, said so.
  const ranged = await k.get(url, { ...auth, range: 'bytes=0-9' });
  t.equal(ranged.status, 200, 'nginx answers a Range with the whole object');
  t.equal(ranged.headers['content-encoding'], 'gzip');
  t.equal(ranged.headers['content-range'], undefined);
  t.ok(ranged.body.equals(GZ), 'and Keyhole passes exactly that');
});

t.test('an S3 object stored with Content-Encoding: gzip, proxy mode: GET, HEAD and Range over the encoded bytes', async (t) => {
  const s3 = await startS3rver(['bucket1']);
  t.teardown(() => s3.close());
  const put = await request(`${s3.endpoint}/bucket1/tables/table.csv`, { method: 'PUT', body: GZ, headers: { 'content-type': 'text/csv', 'content-encoding': 'gzip' }, reset: true });
  t.equal(put.statusCode, 200, 'uploaded compressed');
  await put.body.dump();
  const { k, auth } = await keyholeWith(t, `providers:\n${s3.providerItem({ name: 'store', bucket: 'bucket1', prefixes: ['tables/'] })}`, ['s3://bucket1/'], { env: S3RVER_ENV });
  const url = dataUrl('s3://bucket1/tables/table.csv');
  checkEncoded(t, 'S3', await k.get(url, auth), await k.get(url, auth, 'HEAD'));

  // A range of an encoded representation is a range of the encoded bytes (RFC 9110 §14.1.1).
  for (const [range, start, end] of [
    ['bytes=0-99', 0, 99],
    ['bytes=100-', 100, GZ.length - 1],
    ['bytes=10-19', 10, 19],
  ] as const) {
    // (no suffix range: s3rver reads bytes=-N as bytes=0-N)
    const part = await k.get(url, { ...auth, range });
    t.equal(part.status, 206, `${range}: 206`);
    t.equal(part.headers['content-encoding'], 'gzip', `${range}: says which bytes these are`);
    t.equal(part.headers['content-range'], `bytes ${start}-${end}/${GZ.length}`, `${range}: counted in encoded bytes`);
    t.equal(part.headers['content-length'], String(end - start + 1), `${range}: its length matches what is sent`);
    t.ok(part.body.equals(GZ.subarray(start, end + 1)), `${range}: exactly those encoded bytes`);
  }
  const headRange = await k.get(url, { ...auth, range: 'bytes=0-99' }, 'HEAD');
  t.equal(headRange.headers['content-encoding'], 'gzip', 'HEAD with a Range: the same encoding');
  // Pieced together, the ranges are the stored object, which decodes.
  const a = await k.get(url, { ...auth, range: `bytes=0-${Math.floor(GZ.length / 2)}` });
  const b = await k.get(url, { ...auth, range: `bytes=${Math.floor(GZ.length / 2) + 1}-` });
  t.ok(gunzipSync(Buffer.concat([a.body, b.body])).equals(CSV), 'two ranges, joined, decode to the object');
  const notModified = await k.get(url, { ...auth, 'if-none-match': String((await k.get(url, auth, 'HEAD')).headers.etag) });
  t.equal(notModified.status, 304, 'revalidation still answers 304');
});
