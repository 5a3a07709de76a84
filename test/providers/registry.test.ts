// The registry maps a URI to the one provider that owns it: longest prefix, segment
// boundaries, and nothing for an unowned URI.
import t from 'tap';
import { ProviderRegistry } from '../../src/providers/registry.ts';
import type { Provider } from '../../src/providers/types.ts';
import { canonicalPrefix, parseDataUri, UriError } from '../../src/uri.ts';

let closed: string[] = [];
const provider = (name: string, match: string, fail = false, kind = 'test'): Provider => ({
  name,
  kind,
  match: canonicalPrefix(match),
  orgs: undefined,
  projects: undefined,
  serve: async () => {},
  close: async () => {
    closed.push(name);
    if (fail) throw new Error('close failed');
  },
});

t.test('longest matching prefix wins; unowned URIs resolve to nothing', async (t) => {
  const reg = new ProviderRegistry([provider('bucket', 's3://b/'), provider('images', 's3://b/img/'), provider('exact', 's3://b/one.txt'), provider('web', 'https://data.corp/base/')]);
  const r = (uri: string) => {
    const hit = reg.resolve(parseDataUri(uri));
    return hit && { name: hit.provider.name, rest: hit.rest };
  };
  t.same(r('s3://b/img/a/b.jpg'), { name: 'images', rest: ['a', 'b.jpg'] });
  t.same(r('s3://b/imgx/a.jpg'), { name: 'bucket', rest: ['imgx', 'a.jpg'] });
  t.same(r('s3://b/one.txt'), { name: 'exact', rest: [] });
  t.same(r('s3://b/one.txt.bak'), { name: 'bucket', rest: ['one.txt.bak'] });
  t.same(r('https://DATA.corp/base/x'), { name: 'web', rest: ['x'] });
  t.equal(r('https://data.corp/other/x'), undefined);
  t.equal(r('s3://c/x'), undefined);
  t.equal(r('gs://b/img/x'), undefined);
  t.equal(reg.get('web')!.name, 'web');
  t.equal(reg.get('nope'), undefined);
});

t.test('a URI that names a folder is refused before any provider: uri_folder', async (t) => {
  const reg = new ProviderRegistry([
    provider('bucket', 's3://b/'),
    provider('exact', 's3://b/one.txt'),
    provider('web', 'https://data.corp/base', false, 'http'),
    provider('disk', 'local://files', false, 'local'),
  ]);
  const reason = (raw: string) => {
    try {
      return reg.resolve(parseDataUri(raw))?.provider.name ?? 'none';
    } catch (err) {
      return err instanceof UriError ? err.reason : 'threw';
    }
  };
  for (const raw of ['s3://b/img/', 's3://b/', 's3://b', 'https://data.corp/base/', 'https://data.corp/base/x/', 'local://files/', 's3://c/x/', 'gs://nope/']) {
    t.equal(reason(raw), 'uri_folder', `${raw}: a folder, owned or not`);
    t.equal(reason(raw), 'uri_folder', `${raw}: again (answers are cached)`);
  }
  t.equal(reason('https://data.corp/base'), 'uri_folder', "an http provider's base folder (empty rest)");
  t.equal(reason('local://files'), 'uri_folder', "a local provider's root (empty rest)");
  t.equal(reason('s3://b/one.txt'), 'exact', 'a kind that names objects by the whole URI may own one exact object');
  t.equal(reason('https://data.corp/base/x'), 'web');
  t.equal(reason('s3://c/x'), 'none');
});

t.test('close closes every provider, even when one fails', async (t) => {
  closed = [];
  await new ProviderRegistry([provider('a', 's3://a/', true), provider('b', 's3://b/')]).close();
  t.same(closed.sort(), ['a', 'b']);
});
