// The crash a real Label Studio caused on the first page load: an upstream that closes right
// after its body while Keyhole's read is paused for a slow client killed the process with an
// uncatchable AssertionError in undici 7's parser (Parser.finish: assert(!this.paused),
// nodejs/undici#5360, fixed in undici 8 by #5474). Four ways real upstreams close after a
// body, read by slow clients through the data route and the app front: exact bytes, one
// audit event per data request, and Keyhole still serving afterwards.
// On undici 7.30.2 this file kills Keyhole with that assertion (checked 2026-12-03: at the
// gunicorn cells; the python ones passed that run, the crash depends on when the FIN lands).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { baseYaml, startKeyhole } from '../helpers/keyhole.ts';
import { testCerts } from '../helpers/certs.ts';
import { rawRequest, SLOW_READERS } from './support/client.ts';
import { oneAudit } from './support/audit.ts';
import { writeObjects } from './support/objects.ts';
import { CLOSING_UPSTREAMS } from './support/closing-upstreams.ts';

t.setTimeout(300_000);

const objects = writeObjects(t, { big: 1 << 20 });
const big = objects.big!;
const ca = readFileSync(testCerts().caCert);

for (const up of CLOSING_UPSTREAMS) {
  for (const front of ['data route', 'app proxy'] as const) {
    t.test(`${front} ← ${up.name}`, async (t) => {
      const server = await up.start(t, objects);
      const k = await startKeyhole(
        baseYaml(`providers:
  - name: up
    kind: http
    match: https://up.test/
    baseUrl: ${server.origin}/
    allowPrivateNetworks: true
app:
  upstream: ${server.origin}
`),
      );
      t.teardown(() => k.close());
      const port = Number(new URL(k.base).port);
      const headers: Record<string, string> = front === 'data route' ? { authorization: `Bearer ${await k.token({ scope: ['https://up.test/'] })}` } : {};
      const path = front === 'data route' ? `/v1/data?uri=${encodeURIComponent(`https://up.test${server.path('big')}`)}` : server.path('big');

      for (const reader of [...SLOW_READERS, { name: 'reads at once (Keyhole is still serving)', pace: {} }]) {
        const what = `${front}, a client that ${reader.name}`;
        const r = await rawRequest({ port, ca, path, headers, pace: reader.pace });
        t.equal(r.status, 200, `${what}: 200`);
        t.ok(r.complete, `${what}: complete by its framing`);
        t.equal(r.length, big.size, `${what}: every byte`);
        t.equal(r.sha256, big.sha256, `${what}: exact bytes`);
        if (front === 'data route') {
          const audit = await oneAudit(t, k.audits, r, what);
          t.match(audit, { reason: 'ok', bytes: big.size, aborted: false }, `${what}: audited as served`);
        }
      }
    });
  }
}
