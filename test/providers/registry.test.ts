// The registry maps a URI to the one provider that owns it: longest prefix, segment
// boundaries, and nothing for an unowned URI.
import t from 'tap';
import { ProviderRegistry } from '../../src/providers/registry.js';
import type { Provider } from '../../src/providers/types.js';
import { canonicalPrefix, parseDataUri } from '../../src/providers/uri.js';

let closed: string[] = [];
const provider = (name: string, match: string, fail = false): Provider => ({
  name,
  kind: 'test',
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

t.test('close closes every provider, even when one fails', async (t) => {
  closed = [];
  await new ProviderRegistry([provider('a', 's3://a/', true), provider('b', 's3://b/')]).close();
  t.same(closed.sort(), ['a', 'b']);
});
