// The MIME judgment against vectors written elsewhere: web-platform-tests' MIME type
// parsing cases (mime-types.json, generated-mime-types.json), its Fetch "extract a MIME
// type" cases (content-types.json) and the Fetch Standard's own splitting example. Then
// the judgment Keyhole builds on them: one type sent, its sandbox, octet-stream for none.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as index from 'undici';
import { extractMimeType, headerSafeMimeType, inertTextType, JAVASCRIPT_ESSENCES, parseMimeType, runsOrApplies, serializeMimeType, splitFieldValues } from '../../src/http/mime.ts';
import { dataType, MEDIA_SANDBOX, SANDBOX } from '../../src/http/data-head.ts';

const fixture = <T>(name: string): T[] =>
  // A string entry is a comment (wpt's own convention; the first one names the source).
  (JSON.parse(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'mime', name), 'utf8')) as unknown[]).filter((e): e is T => typeof e !== 'string');

t.test('the deep-loaded parser and serializer are the ones undici exports', async (t) => {
  const parsed = parseMimeType('Text/HTML;Charset="utf-8"');
  const fromIndex = index.parseMIMEType('Text/HTML;Charset="utf-8"');
  t.not(fromIndex, 'failure');
  t.same(parsed, fromIndex);
  t.equal(serializeMimeType, index.serializeAMimeType, 'the very function');
});

for (const file of ['mime-types.json', 'generated-mime-types.json']) {
  t.test(`MIME type parsing and serialization: wpt ${file}`, async (t) => {
    const cases = fixture<{ input: string; output: string | null }>(file);
    t.ok(cases.length > 60, `${cases.length} cases`);
    for (const { input, output } of cases) {
      const parsed = parseMimeType(input);
      t.equal(parsed === undefined ? null : serializeMimeType(parsed), output, JSON.stringify(input));
    }
  });
}

t.test('Fetch get, decode, and split: the standard’s example', async (t) => {
  for (const { lines, output } of fixture<{ lines: string[]; output: string[] | null }>('fetch-split-examples.json')) {
    // Getting combines the lines with ", " (as extractMimeType does with undici's array).
    t.same(lines.length === 0 ? null : splitFieldValues(lines.join(', ')), output, JSON.stringify(lines));
  }
});

t.test('Fetch extract a MIME type: wpt content-types.json, as one field and as repeated lines', async (t) => {
  const cases = fixture<{ input: string[]; mimeType: string; documentContentType: string }>('content-types.json');
  t.ok(cases.length >= 16, `${cases.length} cases`);
  for (const { input, mimeType, documentContentType } of cases) {
    const one = extractMimeType(input.join(', '));
    const lines = extractMimeType(input);
    t.equal(one && serializeMimeType(one), mimeType, `${JSON.stringify(input)} as one field`);
    t.equal(lines && serializeMimeType(lines), mimeType, `${JSON.stringify(input)} as ${input.length} lines`);
    t.equal(one?.essence, documentContentType, `${JSON.stringify(input)}: the document's type`);
  }
  t.equal(extractMimeType(undefined), undefined, 'no field: failure');
  t.equal(extractMimeType(''), undefined, 'an empty field: failure');
  t.equal(extractMimeType('*/*'), undefined, '*/* alone: failure');
  t.equal(extractMimeType('bogus, nonsense/'), undefined, 'nothing valid: failure');
});

t.test('the judgment: the type a browser reads, sent alone, always sandboxed', async (t) => {
  // [field as the upstream sent it, the one Content-Type Keyhole sends]
  const cases: [string | string[] | undefined, string][] = [
    ['text/plain, text/html', 'text/html'],
    ['image/png, image/svg+xml', 'image/svg+xml'],
    ['application/octet-stream, text/html', 'text/html'],
    ['TEXT/PLAIN, TEXT/HTML', 'text/html'],
    ['text/html;charset=utf-8, text/plain', 'text/plain'],
    ['text/html;charset=gbk, text/html', 'text/html;charset=gbk'],
    [['text/plain', 'text/html'], 'text/html'],
    [['image/png', 'image/svg+xml'], 'image/svg+xml'],
    ['text/plain;x=", text/html"', 'text/plain'],
    ['text/plain;x=\', text/html', 'text/html'],
    ['*/*', 'application/octet-stream'],
    ['text/plain, */*', 'text/plain'],
    ['', 'application/octet-stream'],
    [undefined, 'application/octet-stream'],
    ['bogus, text/html', 'text/html'],
    ['text/html, bogus', 'text/html'],
    ['image/jpeg', 'image/jpeg'],
    ['text/plain; charset=utf-8', 'text/plain;charset=utf-8'],
    ['text/plain;charset="utf-8"', 'text/plain;charset=utf-8'],
    ['video/mp4; codecs="avc1.42E01E, mp4a.40.2"', 'video/mp4'],
    ['multipart/byteranges; boundary=3d6b6a416f9b5', 'multipart/byteranges;boundary=3d6b6a416f9b5'],
  ];
  for (const [field, sent] of cases) {
    const judged = dataType(field);
    t.equal(judged.contentType, sent, `${JSON.stringify(field)} → ${sent}`);
    if (typeof field === 'string') t.equal(dataType(field), judged, 'the second time: the judgment kept');
    else t.same(dataType(field), judged, 'the second time: the same judgment');
    const csp = judged.fields[judged.fields.indexOf('content-security-policy') + 1];
    t.equal(csp, /^(audio|video)\//.test(sent) ? MEDIA_SANDBOX : SANDBOX, `${sent}: its sandbox`);
    t.equal(judged.fields[judged.fields.indexOf('x-content-type-options') + 1], 'nosniff');
  }
  for (const type of ['audio/wav', 'audio/mpeg', 'video/mp4', 'video/webm']) t.equal(dataType(type).fields.at(-1), MEDIA_SANDBOX, `${type}: its own player may fetch it`);
  for (const type of ['video/x-evil+xml', 'audio/foo+xml', 'text/html', 'image/svg+xml', 'application/xhtml+xml', 'image/png', 'text/plain'])
    t.equal(dataType(type).fields.at(-1), SANDBOX, `${type}: strict sandbox`);
  t.notOk(SANDBOX.includes('allow-'), 'the strict sandbox allows nothing');
  t.notOk(MEDIA_SANDBOX.includes('allow-scripts'), 'the media sandbox never allows script');
});

t.test('what Keyhole sends parses back to what it judged, in one piece', async (t) => {
  // Every wpt input, judged: the sent value is one valid type, has no quote or comma (where
  // parsers part ways), and reads back as the very type that was judged.
  const inputs = [
    ...fixture<{ input: string }>('mime-types.json').map((c) => c.input),
    ...fixture<{ input: string }>('generated-mime-types.json').map((c) => c.input),
    ...fixture<{ input: string[] }>('content-types.json').map((c) => c.input.join(', ')),
  ];
  let checked = 0;
  for (const input of inputs) {
    if (/[\r\n\0]/.test(input)) continue; // never in a header value undici hands over
    const sent = dataType(input).contentType;
    t.notOk(/[",]/.test(sent), `${JSON.stringify(input)} → ${sent}: nothing to split or unquote`);
    const back = parseMimeType(sent);
    const judged = extractMimeType(input);
    const inert = judged !== undefined && runsOrApplies(judged.essence);
    t.equal(back?.essence, inert ? 'text/plain' : (judged?.essence ?? 'application/octet-stream'), `${JSON.stringify(input)}: same type after the round trip`);
    t.same(back && extractMimeType(sent), back, 'and a list-reading browser reads the same');
    if (judged) t.equal(sent, inert ? inertTextType(judged) : headerSafeMimeType(judged));
    checked++;
  }
  t.ok(checked > 800, `${checked} inputs`);
});

t.test('types that run or apply as a subresource are sent as text/plain, charset kept', async (t) => {
  // WHATWG MIME Sniffing, "JavaScript MIME type": the list as the standard has it.
  const whatwg = [
    'application/ecmascript', 'application/javascript', 'application/x-ecmascript', 'application/x-javascript',
    'text/ecmascript', 'text/javascript', 'text/javascript1.0', 'text/javascript1.1', 'text/javascript1.2',
    'text/javascript1.3', 'text/javascript1.4', 'text/javascript1.5', 'text/jscript', 'text/livescript',
    'text/x-ecmascript', 'text/x-javascript',
  ];
  t.same([...JAVASCRIPT_ESSENCES].sort(), [...whatwg].sort(), 'the list is the standard’s');
  // [field, the one Content-Type Keyhole sends]
  const cases: [string | string[], string][] = [
    ...whatwg.map((type): [string, string] => [type, 'text/plain']),
    ...whatwg.map((type): [string, string] => [type.toUpperCase(), 'text/plain']),
    ['text/javascript; charset=utf-8', 'text/plain;charset=utf-8'],
    ['application/javascript;charset="ISO-8859-1";module=x', 'text/plain;charset=ISO-8859-1'],
    ['text/javascript; charset="a,b"', 'text/plain'],
    ['text/javascript1.6', 'text/plain'],
    ['text/javascript1.7', 'text/plain'],
    ['application/x-jscript', 'text/plain'],
    ['application/javascript+module', 'text/plain'],
    ['text/css', 'text/plain'],
    ['TEXT/CSS; charset=utf-8', 'text/plain;charset=utf-8'],
    ['text/xsl', 'text/plain'],
    ['application/xslt+xml', 'text/plain'],
    ['application/wasm', 'text/plain'],
    ['text/x-component', 'text/plain'],
    // the last valid type is the one judged: lists and repeated lines
    ['text/html, text/javascript', 'text/plain'],
    ['text/plain, text/css', 'text/plain'],
    [['image/png', 'application/javascript'], 'text/plain'],
    ['text/javascript, image/png', 'image/png'],
    ['text/javascript;charset=gbk, text/javascript', 'text/plain;charset=gbk'],
    // data stays what it is: JSON modules run no code, images and media only decode
    ['application/json', 'application/json'],
    ['application/manifest+json', 'application/manifest+json'],
    ['application/ld+json', 'application/ld+json'],
    ['image/png', 'image/png'],
    ['audio/wav', 'audio/wav'],
    ['text/csv', 'text/csv'],
    ['text/plain;charset=utf-8', 'text/plain;charset=utf-8'],
    ['application/x-unknown-content-type', 'application/x-unknown-content-type'],
  ];
  for (const [field, sent] of cases) {
    const judged = dataType(field);
    t.equal(judged.contentType, sent, `${JSON.stringify(field)} → ${sent}`);
    t.equal(judged.fields[judged.fields.indexOf('x-content-type-options') + 1], 'nosniff', `${JSON.stringify(field)}: nosniff, so no browser runs text/plain as script or applies it as style`);
    t.equal(judged.fields[judged.fields.indexOf('content-security-policy') + 1], /^(audio|video)\//.test(sent) ? MEDIA_SANDBOX : SANDBOX, `${JSON.stringify(field)}: sandboxed`);
  }
  for (const essence of ['application/json', 'image/svg+xml', 'text/html', 'application/octet-stream', 'text/plain', 'application/pdf', 'text/vtt']) {
    t.notOk(runsOrApplies(essence), `${essence}: data, not a running type`);
  }
});
