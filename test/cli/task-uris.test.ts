// Rewriting Label Studio exports (test/fixtures/label-studio/: the same four tasks as
// Label Studio's JSON export and as label-studio-converter's JSON-min): what changes, what
// is left alone and reported, the way back, and that every rewritten URL serves its object
// from a running Keyhole.
import t from 'tap';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadRouting } from '../../src/cli/config-part.ts';
import { ExportError, rewriteExport, routingRegistry, type RewriteOptions } from '../../src/cli/task-uris.ts';
import { baseYaml, startKeyhole } from '../helpers/keyhole.ts';
import { tmpDir } from '../helpers/cli.ts';

const FIXTURES = join(process.cwd(), 'test', 'fixtures', 'label-studio');
const P = 's3://labeling-data/project-12';

type Task = { id: number; data: Record<string, unknown>; annotations: unknown[]; predictions: unknown[] } & Record<string, unknown>;

function fixture<T = Task[]>(name: 'export.json' | 'export-min.json' = 'export.json'): T {
  return JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as T;
}

/** The s3 provider's credentials reference variables nobody sets: routing never reads them. */
function routingYaml(localRoot: string): string {
  return baseYaml(`providers:
  - name: ls-images
    kind: s3
    match: s3://labeling-data/
    buckets: [{ name: labeling-data }]
    credentials: { accessKeyId: "\${env:TASKS_T_UNSET_KEY_ID}", secretAccessKey: "\${env:TASKS_T_UNSET_SECRET}" }
  - { name: ls-local, kind: local, match: "local://ls/", root: ${localRoot} }
`);
}

function options(file: string, extra: Partial<RewriteOptions> = {}): RewriteOptions {
  const routing = loadRouting(file);
  return { to: 'keyhole', base: '', registry: routingRegistry(routing.providers), maxUriLength: routing.maxUriLength, ...extra };
}

const dir = tmpDir('task-uris');
mkdirSync(join(dir, 'ls'));
const configFile = join(dir, 'keyhole.yaml');
writeFileSync(configFile, routingYaml(join(dir, 'ls')));
const url = (uri: string, base = '') => `${base}/v1/data?uri=${encodeURIComponent(uri)}`;

t.test('JSON export: every matched URI in task data becomes a Keyhole URL, nothing else changes', async (t) => {
  const original = fixture();
  const doc = fixture();
  const report = rewriteExport(doc, 'auto', options(configFile));
  t.same({ format: report.format, tasks: report.tasks, rewritten: report.rewritten, leftAlone: report.leftAlone }, { format: 'json', tasks: 4, rewritten: 7, leftAlone: 5 });

  t.same(doc[0]!.data, { image: url(`${P}/img/0001.jpg`), caption: 'two cyclists at a crossing' });
  t.equal(doc[0]!.data.image, '/v1/data?uri=s3%3A%2F%2Flabeling-data%2Fproject-12%2Fimg%2F0001.jpg', 'the URL of docs/integrate.md section 2');
  t.equal(doc[1]!.data.image, '/v1/data?uri=s3%3A%2F%2Flabeling-data%2Fproject-12%2Fimg%2Fstreet%20scene%2002.jpg', 'a space');
  t.equal(doc[1]!.data.caption, original[1]!.data.caption, 'text that only mentions a URI is text');
  t.equal(doc[2]!.data.image, url(`${P}/img/café-straße №3.png`), 'unicode, as written');
  t.equal(doc[2]!.data.audio, url(`${P}/audio/%E2%84%963 take%3F%23.wav`), 'an encoded ? and # stay encoded, under one more encoding');
  t.same(doc[2]!.data.pages, [
    { page: 1, image: url(`${P}/scans/doc-7/p1.tif`) },
    { page: 2, image: url(`${P}/scans/doc-7/p2.tif`) },
  ], 'lists of objects');
  t.same(doc[2]!.data.source, { uri: url(`${P}/raw/doc-7.pdf`), pages: 2, checked: true, note: null }, 'nested objects, other types kept');

  for (let i = 0; i < doc.length; i++) {
    const { data: _d, ...rest } = doc[i]!;
    const { data: _o, ...was } = original[i]!;
    t.same(rest, was, `task ${doc[i]!.id}: annotations, predictions and the export's own fields untouched`);
  }
  t.equal(JSON.stringify(doc[1]!.annotations).match(/"s3:\/\/labeling-data\/project-12\/img\/0001\.jpg"/g)?.length, 1, 'the URI an annotator wrote in a TextArea result is still there');

  t.same(doc[3]!.data, { ...original[3]!.data }, 'task 104 has nothing Keyhole serves: all of it left alone');
  t.same(
    report.examples.map((e) => [e.where, e.value, e.why]),
    [
      ['task 104 data.image', 'gs://archive-2019/frames/0004.jpg', 'no provider matches'],
      ['task 104 data.video', `${P}/video/clip?…`, 'query and fragment are not accepted in data URIs'],
      ['task 104 data.thumb', `${P}/img/frame#3.jpg`, 'query and fragment are not accepted in data URIs'],
      ['task 104 data.preview', 'https://cdn.example.org/p/0004.jpg?…', 'no provider matches'],
      ['task 104 data.folder', `${P}/img/`, 'the URI ends in / and names a folder, not an object'],
    ],
  );
  t.notMatch(JSON.stringify(report), /Signature|AKIAEXAMPLE/, 'a presigned query string is never repeated');

  const back = rewriteExport(doc, 'auto', options(configFile, { to: 'storage' }));
  t.same({ rewritten: back.rewritten, leftAlone: back.leftAlone }, { rewritten: 7, leftAlone: 0 });
  t.same(doc, original, 'and back: the export as it was');
  t.equal(JSON.stringify(doc, null, 2), JSON.stringify(original, null, 2), 'in the same key order');
});

t.test('--base makes the URLs absolute; the way back takes them and relative ones, not another origin', async (t) => {
  const base = 'https://label.example.org';
  const doc = fixture();
  rewriteExport(doc, 'json', options(configFile, { base }));
  t.equal(doc[0]!.data.image, url(`${P}/img/0001.jpg`, base));
  const again = rewriteExport(doc, 'json', options(configFile, { base }));
  t.same({ rewritten: again.rewritten, leftAlone: again.leftAlone }, { rewritten: 0, leftAlone: 5 }, 'a second run finds nothing new to rewrite or report');

  doc[1]!.data.image = url(`${P}/img/street scene 02.jpg`);
  doc[0]!.data.image = url(`${P}/img/0001.jpg`, 'https://elsewhere.example.org');
  const back = rewriteExport(doc, 'json', options(configFile, { to: 'storage', base }));
  t.equal(doc[1]!.data.image, `${P}/img/street scene 02.jpg`, 'relative: the same origin in any case');
  t.equal(doc[2]!.data.image, `${P}/img/café-straße №3.png`);
  t.equal(doc[0]!.data.image, url(`${P}/img/0001.jpg`, 'https://elsewhere.example.org'), 'another origin is left alone');
  t.match(back.examples, [{ where: 'task 101 data.image', why: `not under --base ${base}` }]);
  t.equal(back.leftAlone, 1);

  const noBase = [{ id: 1, data: { image: url(`${P}/a.jpg`, base) } }];
  const r = rewriteExport(noBase, 'json', options(configFile, { to: 'storage' }));
  t.equal(noBase[0]!.data.image, url(`${P}/a.jpg`, base));
  t.equal(r.examples[0]?.why, 'an absolute URL: give its origin as --base');
});

t.test('the way back takes only plain Keyhole URLs of a matched URI', async (t) => {
  const doc = [
    {
      id: 1,
      data: {
        token: `${url(`${P}/a.jpg`)}&token=eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl`,
        stranger: url('gs://archive-2019/a.jpg'),
        broken: '/v1/data?uri=s3%3A%2F%2Flabeling-data%2F%E0%A4%A.jpg',
        text: 'see /v1/data?uri= in the docs',
        fine: url(`${P}/b.jpg`),
      },
    },
  ];
  const r = rewriteExport(doc, 'json', options(configFile, { to: 'storage' }));
  t.equal(doc[0]!.data.fine, `${P}/b.jpg`);
  t.same(
    r.examples.map((e) => [e.where, e.why]),
    [
      ['task 1 data.token', 'the URL carries more than ?uri='],
      ['task 1 data.stranger', 'no provider matches'],
      ['task 1 data.broken', 'malformed percent-encoding'],
    ],
  );
  t.notMatch(JSON.stringify(r), /eyJ/, 'a token in a URL is never repeated');
  t.equal(doc[0]!.data.text, 'see /v1/data?uri= in the docs');
});

t.test('JSON-min: the data keys sit beside the export fields and the annotation results', async (t) => {
  const original = fixture<Record<string, unknown>[]>('export-min.json');
  const doc = fixture<Record<string, unknown>[]>('export-min.json');
  const report = rewriteExport(doc, 'auto', options(configFile));
  t.equal(report.format, 'json-min');
  t.equal(report.tasks, 4);
  t.equal(doc[0]!.image, url(`${P}/img/0001.jpg`));
  t.same(doc[0]!.label, original[0]!.label, 'rectangle results untouched');
  t.same(
    doc.map((r) => [r.id, r.annotator, r.annotation_id, r.created_at, r.lead_time]),
    original.map((r) => [r.id, r.annotator, r.annotation_id, r.created_at, r.lead_time]),
    "the export's own fields untouched",
  );
  // Without the label config nothing tells a TextArea result from a data key: --key does.
  t.equal(doc[1]!.comment, url(`${P}/img/0001.jpg`), 'a result holding a matched URI is rewritten when every key is');
  const keyed = fixture<Record<string, unknown>[]>('export-min.json');
  const only = rewriteExport(keyed, 'auto', options(configFile, { keys: new Set(['image', 'audio', 'pages', 'source']) }));
  t.equal(keyed[1]!.comment, original[1]!.comment, '--key image … leaves the comment alone');
  t.equal(keyed[1]!.image, url(`${P}/img/street scene 02.jpg`));
  t.equal(only.rewritten, 7);

  rewriteExport(doc, 'auto', options(configFile, { to: 'storage' }));
  t.same(doc, original, 'and back');
});

t.test('--key in a JSON export names top-level data keys', async (t) => {
  const doc = fixture();
  const r = rewriteExport(doc, 'json', options(configFile, { keys: new Set(['pages']) }));
  t.equal(r.rewritten, 2);
  t.equal(doc[0]!.data.image, `${P}/img/0001.jpg`);
  t.same(doc[2]!.data.pages, [
    { page: 1, image: url(`${P}/scans/doc-7/p1.tif`) },
    { page: 2, image: url(`${P}/scans/doc-7/p2.tif`) },
  ]);
});

t.test('what is not an export is refused with a reason', async (t) => {
  const o = options(configFile);
  t.throws(() => rewriteExport('s3://labeling-data/a.jpg', 'auto', o), new ExportError('expected a Label Studio export: a JSON array of tasks'));
  t.throws(() => rewriteExport([{ data: { image: 'x' } }, { image: 'y' }], 'auto', o), /1 of 2 tasks have a "data" object/);
  t.throws(() => rewriteExport([{ id: 7, image: 'x' }], 'json', o), /task 7 has no "data" object/);
  t.throws(() => rewriteExport([{ data: {} }, 3], 'json', o), /task 2 is not a JSON object/);
  const one = { id: 9, data: { image: `${P}/one.jpg` } };
  t.equal(rewriteExport(one, 'auto', o).rewritten, 1, 'a single task object, as Label Studio imports one');
  t.equal(one.data.image, url(`${P}/one.jpg`));
});

t.test('odd strings: a lone surrogate, an own __proto__ key, a URI longer than the data route takes', async (t) => {
  const doc = JSON.parse(`[{"data": {"__proto__": "${P}/proto.jpg", "odd": "${P}/\\ud800.jpg", "long": "${P}/${'a'.repeat(2100)}.jpg"}}]`) as Task[];
  const r = rewriteExport(doc, 'json', options(configFile));
  t.equal(r.rewritten, 1);
  t.ok(Object.hasOwn(doc[0]!.data, '__proto__'), 'still an own key');
  t.equal(JSON.parse(JSON.stringify(doc))[0].data.__proto__, url(`${P}/proto.jpg`));
  t.equal(Object.getPrototypeOf(doc[0]!.data), Object.prototype, 'no prototype was set');
  t.same(r.examples.map((e) => e.why), ['not well-formed Unicode', 'URI longer than 2048 characters']);
});

t.test('every rewritten URL serves its object from a running Keyhole', async (t) => {
  const root = join(dir, 'ls');
  const names = [['img', '0001.jpg'], ['img', 'street scene 02.jpg'], ['img', 'café-straße №3.png'], ['audio', '№3 take?#.wav'], ['img', 'a+b (1).jpg']] as const;
  for (const [folder, name] of names) {
    mkdirSync(join(root, folder), { recursive: true });
    writeFileSync(join(root, folder, name), `bytes of ${name}`);
  }
  // As Label Studio's local storage writes them: raw names, except the one whose ? and # must be encoded.
  const uris = ['local://ls/img/0001.jpg', 'local://ls/img/street scene 02.jpg', 'local://ls/img/café-straße №3.png', 'local://ls/audio/%E2%84%963 take%3F%23.wav', 'local://ls/img/a+b (1).jpg'];
  const k = await startKeyhole(routingYaml(root), { env: { TASKS_T_UNSET_KEY_ID: 'id', TASKS_T_UNSET_SECRET: 'secret' } });
  t.teardown(() => k.close());
  const doc = [{ id: 1, data: { files: [...uris] } }];
  const r = rewriteExport(doc, 'json', options(configFile, { base: k.base }));
  t.equal(r.rewritten, uris.length);
  const token = await k.token({ scope: ['local://ls/'] });
  for (const [i, link] of doc[0]!.data.files.entries()) {
    const res = await k.get(link, { authorization: `Bearer ${token}` });
    t.equal(res.status, 200, uris[i]!);
    t.equal(res.body.toString(), `bytes of ${names[i]![1]}`);
  }
});
