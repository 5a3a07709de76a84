// A data URI and the object a provider reads for it always name the same thing: a token's
// scope is checked on the canonical URI, so an object named differently upstream is an object
// read outside the scope. Against the http (loopback upstream), redis (real redis-server),
// local (temp dir) and s3 (real s3rver) providers, through the data and the presign routes:
// a URI that ends in '/' names a folder and is refused (uri_folder) before any provider; so
// is one that names a provider's base folder (empty rest); an encoded '/' is refused; encoded
// segments name the object their canonical form names.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpProviderItem, startUpstream } from '../helpers/upstream.ts';
import { redisProviderItem, startRedis, testClient } from '../helpers/redis.ts';
import { auditFor, baseYaml, dataUrl, localProviderItem, startKeyhole } from '../helpers/keyhole.ts';
import { startS3rver, S3RVER_ENV } from '../fixtures/cloud/s3rver.ts';
import type { RedisClient } from '../../src/redis/connect.ts';

const SIBLING = 'SIBLING-OBJECT-OUTSIDE-THE-SCOPE';
const BASE_FOLDER = 'BASE-FOLDER-INDEX';

// The object "proj" sits beside the folder "proj/" the token is scoped to, in every store.
const up = await startUpstream({
  objects: {
    '/data/proj': { body: SIBLING },
    '/data/proj/inner.txt': { body: 'inner http' },
    '/data/proj/a b.txt': { body: 'spaced http' },
    '/other/': { body: BASE_FOLDER },
  },
});
t.teardown(() => up.close());

const dir = mkdtempSync(join(tmpdir(), 'keyhole-object-name-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
mkdirSync(join(dir, 'files', 'proj'), { recursive: true });
writeFileSync(join(dir, 'files', 'proj', 'inner.txt'), 'inner local');
writeFileSync(join(dir, 'files', 'proj', 'a b.txt'), 'spaced local');
// A file named like the folder cannot sit beside it: the sibling is the folder's twin one level up.
mkdirSync(join(dir, 'twin'));
writeFileSync(join(dir, 'twin', 'proj'), SIBLING);

const redis = await startRedis();
t.teardown(() => redis.stop());
const seed: RedisClient = await testClient(redis, { name: 'seed' });
t.teardown(() => seed.disconnect());
await seed.set('proj', SIBLING);
await seed.set('proj/inner.txt', 'inner redis');
await seed.set('proj/a b.txt', 'spaced redis');

const s3 = await startS3rver(['bucket1']);
t.teardown(() => s3.close());
await s3.put('bucket1', 'images/proj', SIBLING);
await s3.put('bucket1', 'images/proj/inner.txt', 'inner s3');

const k = await startKeyhole(
  baseYaml(`providers:
${httpProviderItem('files-http', 'https://files.corp.example/', `${up.origin}/data/`)}${httpProviderItem('exact-http', 'https://other.corp.example/proj', `${up.origin}/other/`)}${redisProviderItem(redis)}${localProviderItem('files', join(dir, 'files'))}${localProviderItem('twin', join(dir, 'twin'))}${s3.providerItem({ name: 'store', bucket: 'bucket1', prefixes: ['images/'] })}${s3.providerItem({ name: 'signed', bucket: 'bucket2', mode: 'presign' })}`),
  { env: S3RVER_ENV },
);
t.teardown(() => k.close());

// Each token is scoped to one folder only; its sibling object is outside it.
const FOLDERS = ['https://files.corp.example/proj/', 'redis://0/proj/', 'local://twin/proj/', 's3://bucket1/images/proj/', 's3://bucket2/proj/', 'https://other.corp.example/proj'];
const token = await k.token({ scope: FOLDERS });
const get = (uri: string) => k.get(dataUrl(uri), { authorization: `Bearer ${token}` });
const error = (body: Buffer): string => {
  try {
    return (JSON.parse(body.toString()) as { error: string }).error;
  } catch {
    return `(not a refusal: ${body.toString().slice(0, 40)})`;
  }
};

t.test('a URI ending in / is refused before any provider, for every kind', async (t) => {
  const upstreamBefore = up.log.length;
  for (const uri of ['https://files.corp.example/proj/', 'redis://0/proj/', 'local://twin/proj/', 's3://bucket1/images/proj/', 's3://bucket2/proj/']) {
    const res = await get(uri);
    t.equal(res.status, 400, `${uri}: 400`);
    t.equal(error(res.body), 'uri_folder', `${uri}: uri_folder`);
    t.notOk(res.body.toString().includes(SIBLING), `${uri}: the sibling object is not served`);
    const audit = await auditFor(k, res.headers['x-request-id'] as string);
    t.match(audit, { uri, decision: 'deny', reason: 'uri_folder', status: 400 }, `${uri}: audited as the folder it names`);
    t.equal(audit.provider, undefined, `${uri}: no provider was chosen`);
  }
  t.equal(up.log.length, upstreamBefore, 'the http upstream was never asked');
});

t.test('the base folder of a provider (empty rest) is refused, whether asked with or without a slash', async (t) => {
  const token2 = await k.token({ scope: ['https://other.corp.example/', 'redis://0/', 'local://files/', 's3://bucket1/'] });
  const upstreamBefore = up.log.length;
  for (const uri of ['https://other.corp.example/proj', 'https://other.corp.example/proj/', 'redis://0', 'redis://0/', 'local://files', 's3://bucket1']) {
    const res = await k.get(dataUrl(uri), { authorization: `Bearer ${token2}` });
    t.equal(res.status, 400, `${uri}: 400`);
    t.equal(error(res.body), 'uri_folder', `${uri}: uri_folder`);
    t.notOk(res.body.toString().includes(BASE_FOLDER), `${uri}: no folder index`);
  }
  t.equal(up.log.length, upstreamBefore, 'the http upstream was never asked for its base folder');
});

t.test('an encoded / at the end or inside a segment is refused (never names the sibling)', async (t) => {
  for (const folder of ['https://files.corp.example/proj/', 'redis://0/proj/', 'local://twin/proj/', 's3://bucket1/images/proj/']) {
    const name = folder.slice(0, -1);
    for (const uri of [`${name}%2F`, `${name}%2f`, `${name}%2Finner.txt`, `${name}%252F`]) {
      const res = await get(uri);
      t.equal(res.status, 400, `${uri}: 400`);
      t.match(error(res.body), /^uri_(traversal|double_encoded)$/, `${uri}: ${error(res.body)}`);
      t.notOk(res.body.toString().includes(SIBLING), `${uri}: the sibling object is not served`);
    }
  }
});

t.test('an object inside the scope is served, and encoded segments name the object their canonical form names', async (t) => {
  const token3 = await k.token({ scope: ['https://files.corp.example/proj/', 'redis://0/proj/', 'local://files/proj/', 's3://bucket1/images/proj/'] });
  const read = (uri: string) => k.get(dataUrl(uri), { authorization: `Bearer ${token3}` });
  const cases: [string, string][] = [
    ['https://files.corp.example/proj/inner.txt', 'inner http'],
    ['https://files.corp.example/pr%6Fj/a%20b.txt', 'spaced http'],
    ['redis://0/proj/inner.txt', 'inner redis'],
    ['redis://0/%70roj/a%20b.txt', 'spaced redis'],
    ['local://files/proj/inner.txt', 'inner local'],
    ['local://files/pro%6a/a%20b.txt', 'spaced local'],
    ['s3://bucket1/images/proj/inner.txt', 'inner s3'],
    ['s3://bucket1/images/pr%6Fj/inner.txt', 'inner s3'],
  ];
  for (const [uri, body] of cases) {
    const res = await read(uri);
    t.equal(res.status, 200, `${uri}: 200`);
    t.equal(res.body.toString(), body, `${uri}: the object its canonical form names`);
  }
  t.equal(up.log.at(-1)?.url, '/data/proj/a%20b.txt', 'the upstream path is the canonical path below the prefix');
  // Outside the scope, even when the store holds it: the sibling through a URI that names it.
  for (const uri of ['https://files.corp.example/proj', 'redis://0/proj', 's3://bucket1/images/proj']) {
    const res = await read(uri);
    t.equal(res.status, 403, `${uri}: 403`);
    t.equal(error(res.body), 'scope_denied', `${uri}: scope_denied`);
  }
});

t.test('POST /v1/presign refuses folder URIs the same way, before any provider', async (t) => {
  const res = await k.get('/v1/presign', { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, 'POST', JSON.stringify({ uris: [...FOLDERS, 's3://bucket2', 's3://bucket2/proj%2F'] }));
  t.equal(res.status, 200);
  const results = (JSON.parse(res.body.toString()) as { results: { uri: string; error?: string; url?: string }[] }).results;
  t.same(
    results.map((r) => [r.uri, r.error]),
    [...FOLDERS.map((u) => [u, 'uri_folder']), ['s3://bucket2', 'uri_folder'], ['s3://bucket2/proj%2F', 'uri_traversal']],
  );
  t.notOk(results.some((r) => r.url !== undefined), 'nothing was signed');
});
