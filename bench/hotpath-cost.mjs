// CPU µs per request of each step Keyhole's data route runs before and after relaying, measured
// one by one on the built modules with the bench config (token cache warm, 1,024 tokens, as
// under load). Evidence for where the per-request budget goes besides socket I/O and undici.
// Pin it: taskset -c 0 node bench/hotpath-cost.mjs [BUILD_DIR] [CONFIG] [TOKENS]
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';

const build = resolve(process.argv[2] ?? 'bench/.work/build');
const configFile = resolve(process.argv[3] ?? 'bench/.work/run/keyhole.yaml');
const tokens = readFileSync(resolve(process.argv[4] ?? 'bench/.work/run/tokens.txt'), 'utf8').trim().split('\n');
/** The first of the build's module paths that exists: the new src/ layout first, then the old. */
const mod = (...paths) => {
  const found = paths.map((p) => `${build}/${p}`).find((f) => existsSync(f));
  if (!found) throw new Error(`none of ${paths.join(', ')} in ${build}`);
  return import(pathToFileURL(found).href);
};
const { loadConfigFile } = await mod('config/load.js');
const { createRuntime } = await mod('server/runtime.js');
const { authenticate } = await mod('server/authenticate.js');
const { dataQuery } = await mod('server/data-route.js');
const { parseDataUri } = await mod('uri.js', 'providers/uri.js');
const { authorize } = await mod('auth/scope.js');
const { AuditLog, decisionFor } = await mod('observe/audit.js');
const { LineWriter } = await mod('observe/line-writer.js');
const { relayedResponseFields, forwardedRequestHeaders } = await mod('http/data-head.js', 'relay/headers.js');

const config = loadConfigFile(configFile);
const logger = pino({ level: 'silent' });
const rt = await createRuntime(config, { logger });
const url = `/v1/data?uri=${encodeURIComponent('https://data.bench/obj/1k')}`;
const headersFor = (t) => ({ host: '127.0.0.1:19404', authorization: `Bearer ${t}` });
const upstreamHeaders = { 'content-type': 'application/octet-stream', 'content-length': '1024', etag: '"abc-123"', 'last-modified': 'Sun, 22 Nov 2026 06:00:00 GMT', 'accept-ranges': 'bytes', server: 'nginx', date: 'Sun, 22 Nov 2026 06:00:00 GMT', connection: 'keep-alive' };
for (const t of tokens) await authenticate(rt, headersFor(t), null); // fill the verified-token cache
const audit = new AuditLog(pino({ level: 'info' }, new LineWriter({ fd: (await import('node:fs')).openSync('/dev/null', 'w') })));
const head = ['referrer-policy', 'no-referrer', 'x-request-id', randomUUID()];

const claims = (await authenticate(rt, headersFor(tokens[0]), null)).claims;
// authorize() took the claims, and now takes a session ({ claims, providers? }): this serves both.
const session = { ...claims, claims };
const uri = parseDataUri('https://data.bench/obj/1k', 2048);
const resolved = rt.registry.resolve(uri);
const steps = {
  'randomUUID (request id)': () => randomUUID(),
  'dataQuery': () => dataQuery(url),
  'authenticate (extract + cached verify + revocation)': async (i) => authenticate(rt, headersFor(tokens[i % tokens.length]), null),
  'parseDataUri': () => parseDataUri('https://data.bench/obj/1k', 2048),
  'registry.resolve': () => rt.registry.resolve(uri),
  'authorize (scope)': () => authorize(session, uri.canonical, resolved.provider),
  'forwardedRequestHeaders + injected copy': () => forwardedRequestHeaders(headersFor(tokens[0]), { 'accept-encoding': 'identity', authorization: 'Basic dXNlcjpwYXNz' }),
  'relayedResponseFields': () => relayedResponseFields(upstreamHeaders, head, 200),
  'metrics (recordRequest, as the data route does)': () => rt.metrics.recordRequest('upstream', 200, decisionFor('ok', 200), 0.0013, 1024, false),
  'audit line (AuditLog → LineWriter to /dev/null)': (i) => audit.write({ id: head[3], sub: `user${i % 1024}`, org: undefined, provider: 'upstream', uri: 'https://data.bench/obj/1k', decision: 'allow', reason: 'ok', status: 200, bytes: 1024, aborted: false, ms: 1.3, client: '127.0.0.1', tokenSource: 'header' }),
};
const N = 200_000;
for (let round = 0; round < 2; round++) {
  for (const [name, fn] of Object.entries(steps)) {
    const isAsync = fn.constructor.name === 'AsyncFunction';
    const c0 = process.cpuUsage();
    if (isAsync) for (let i = 0; i < N; i++) await fn(i);
    else for (let i = 0; i < N; i++) fn(i);
    const c = process.cpuUsage(c0);
    if (round === 1) console.log(`${name.padEnd(56)} ${((c.user + c.system) / N).toFixed(2)} µs`);
  }
}
await rt.close();
