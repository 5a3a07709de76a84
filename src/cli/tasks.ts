// `keyhole tasks rewrite`: moves a Label Studio task export onto Keyhole (storage URIs →
// /v1/data?uri=… URLs) or back, for an admin migrating existing projects. It reads the
// config for the providers' prefixes only: no secret needs to be set where it runs.
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../config/load.ts';
import { loadRouting } from './config-part.ts';
import { fail, failConfig } from './exit.ts';
import { ExportError, rewriteExport, routingRegistry, type Direction, type RewriteReport } from './task-uris.ts';

export const TASKS_USAGE = `usage: keyhole tasks rewrite --config FILE [--to keyhole|storage] [--base URL]
                             [--input FILE|-] [--output FILE|-] [--format auto|json|json-min] [--key NAME]…

Rewrites a Label Studio task export (Export → JSON or JSON-min) so that its tasks load
their files through Keyhole, or back:

  s3://labeling-data/img/0001.jpg  ⇄  /v1/data?uri=s3%3A%2F%2Flabeling-data%2Fimg%2F0001.jpg

Every string in each task's data is looked at (nested objects and lists too); only a URI
that a provider of FILE matches is rewritten, exactly as written (Keyhole canonicalises it
when serving), so --to storage gives back the export's own values. Annotations,
predictions and the export's own fields are never touched. Keyhole reads %XX in a URI as
an escape, as the data route does: a key with a literal % in it is written %25.

  --config FILE         Keyhole's config; only the providers' match prefixes are read, so no
                        \${env:…}/\${file:…} secret needs to be set
  --to keyhole|storage  keyhole (default): URIs to Keyhole URLs; storage: the inverse (only
                        /v1/data?uri=… URLs, relative or on --base, of a matched URI)
  --base URL            make the URLs absolute, e.g. https://label.example.org (default:
                        relative, for Keyhole in front of the app on one origin)
  --input FILE|-        the export (default -, stdin)
  --output FILE|-       where the rewritten export goes (default -, stdout); may be the input
                        file: it is replaced once the whole export is written
  --format F            auto (default: JSON when every task has a "data" object), json or
                        json-min
  --key NAME            rewrite only this top-level data key (repeatable). JSON-min puts the
                        annotation results beside the data keys: name the data keys to be sure
                        a URI in a result is kept as it is

The whole export is held in memory, about 5 times its size at the peak (measured: 550 MB
for a 100 MB export, 2.4 GB for 500 MB), and it must be under 512 MiB, JavaScript's
longest string: export larger projects in parts.
A summary goes to stderr: tasks, values rewritten, URI-looking values left alone and why
(the first few). Exit 0 when written; 2 on a usage error, a config, input or JSON problem.
`;

const FORMATS = ['auto', 'json', 'json-min'] as const;
const DIRECTIONS: readonly Direction[] = ['keyhole', 'storage'];

export async function tasksCommand(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    if (sub === undefined) fail(`tasks needs a subcommand\n${TASKS_USAGE}`);
    process.stdout.write(TASKS_USAGE);
    return;
  }
  if (sub !== 'rewrite') fail(`unknown tasks subcommand ${sub}\n${TASKS_USAGE}`);
  const values = options(rest);
  if (values.help) {
    process.stdout.write(TASKS_USAGE);
    return;
  }
  if (!values.config) fail('tasks rewrite needs --config FILE (its providers decide which URIs are rewritten)');
  const to = DIRECTIONS.find((d) => d === values.to);
  if (!to) fail(`--to must be keyhole or storage, not ${values.to}`);
  const format = FORMATS.find((f) => f === values.format);
  if (!format) fail(`--format must be auto, json or json-min, not ${values.format}`);
  const base = values.base === undefined ? '' : baseUrl(values.base);
  if (values.input === '-' && process.stdin.isTTY) fail('tasks rewrite reads the export from --input FILE or from stdin (a pipe)');

  let routing;
  try {
    routing = loadRouting(values.config);
  } catch (err) {
    if (err instanceof ConfigError) failConfig(values.config, err);
    throw err;
  }
  const registry = routingRegistry(routing.providers);

  const raw = await readInput(values.input);
  const bom = raw.startsWith('\uFEFF');
  const text = bom ? raw.slice(1) : raw;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    fail(`${inputName(values.input)} is not JSON: ${jsonProblem(err as Error)}`);
  }
  let report: RewriteReport;
  try {
    report = rewriteExport(doc, format, { to, base, registry, maxUriLength: routing.maxUriLength, keys: values.key ? new Set(values.key) : undefined });
  } catch (err) {
    if (err instanceof ExportError) fail(`${inputName(values.input)}: ${err.message}`);
    throw err;
  }
  const indent = indentOf(text);
  const out = `${bom ? '\uFEFF' : ''}${JSON.stringify(doc, null, indent)}${text.endsWith('\n') ? '\n' : ''}`;
  writeOutput(values.output, out);
  process.stderr.write(summary(report, to));
}

function options(args: string[]) {
  try {
    return parseArgs({
      args,
      options: {
        config: { type: 'string', short: 'c' },
        to: { type: 'string', default: 'keyhole' },
        base: { type: 'string' },
        input: { type: 'string', short: 'i', default: '-' },
        output: { type: 'string', short: 'o', default: '-' },
        format: { type: 'string', default: 'auto' },
        key: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (err) {
    fail(`${(err as Error).message}\n${TASKS_USAGE}`);
  }
}

/** An origin with an optional path; the URLs are `${base}/v1/data?uri=…`. */
function baseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    fail(`--base must be an absolute URL like https://label.example.org, not ${raw}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') fail('--base must be an http:// or https:// URL');
  if (url.search || url.hash || url.username || url.password) fail('--base takes an origin and a path only: no query, fragment or user');
  return url.origin + url.pathname.replace(/\/+$/, '');
}

async function readInput(input: string): Promise<string> {
  try {
    const bytes = input === '-' ? await readStdin() : readFileSync(input);
    return bytes.toString('utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_STRING_TOO_LONG' || code === 'ERR_FS_FILE_TOO_LARGE') {
      fail(`${inputName(input)} is larger than the 512 MiB this command can hold: export fewer tasks at a time`);
    }
    fail(`cannot read ${inputName(input)}: ${code ?? (err as Error).message}`);
  }
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function writeOutput(output: string, text: string): void {
  if (output === '-') {
    process.stdout.write(text);
    return;
  }
  // Beside the target and renamed over it: --output may be the input, kept whole until then.
  const temp = join(dirname(output), `.${basename(output)}.${process.pid}.tmp`);
  try {
    // An export may hold signed URLs: the rewritten file keeps the permissions of the one it replaces.
    let mode: number | undefined;
    try {
      mode = statSync(output).mode & 0o777;
    } catch {
      // a new file: the usual mode
    }
    writeFileSync(temp, text, mode === undefined ? {} : { mode });
    renameSync(temp, output);
  } catch (err) {
    rmSync(temp, { force: true });
    fail(`cannot write ${output}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 1);
  }
}

function inputName(input: string): string {
  return input === '-' ? 'stdin' : input;
}

/** Where the JSON breaks, without V8's quote of the input (task data may hold signed URLs). */
function jsonProblem(err: Error): string {
  // V8 quotes the input around the error (`…, "=SECRET", b]" is not valid JSON`, with a leading
  // `...` when cut): an export's signed URLs must not reach the terminal.
  return err.message.replace(/, (?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, '');
}

/** Label Studio writes its exports indented (JSON-min by 2): keep the input's own indentation, or none. */
function indentOf(text: string): string | number {
  const m = /^[[{]\r?\n([ \t]+)/.exec(text.trimStart());
  return m ? m[1]! : 0;
}

function summary(r: RewriteReport, to: Direction): string {
  const target = to === 'keyhole' ? 'Keyhole URLs' : 'storage URIs';
  const lines = [`keyhole tasks rewrite: ${r.tasks} task(s) (${r.format}), ${r.rewritten} value(s) rewritten to ${target}, ${r.leftAlone} left alone`];
  for (const e of r.examples) lines.push(`  ${e.where}: ${e.value} (${e.why})`);
  if (r.leftAlone > r.examples.length) lines.push(`  … and ${r.leftAlone - r.examples.length} more`);
  return `${lines.join('\n')}\n`;
}
