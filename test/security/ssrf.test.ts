// SSRF: an http provider only reaches public addresses unless ops allow more, the address
// checked is the address connected, redirects are never followed, and the data URI never
// chooses where Keyhole connects.
import t, { type Test } from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, LookupFunction } from 'node:net';
import { connect as netConnect } from 'node:net';
import { buildConnector } from 'undici';
import { ConfigError, parseConfig } from '../../src/config/load.ts';
import { createPool } from '../../src/relay/pool.ts';
import { AddressRefused, classifyAddress, guardedConnector, refusal, type AddressCategory } from '../../src/relay/ssrf.ts';
import { auditFor, baseYaml, dataUrl, keyholeWith, startKeyhole, TEST_SECRET } from '../helpers/keyhole.ts';
import { startUpstream } from '../helpers/upstream.ts';
import { Tally } from './tally.ts';

const tally = new Tally('ssrf');

/** A plain HTTP server on one loopback address that counts connections and requests. */
async function canary(host = '127.0.0.1', port = 0): Promise<{ server: Server; port: number; connections: number; requests: string[]; bytes: number; close(): Promise<void> }> {
  const state = {
    connections: 0,
    requests: [] as string[],
    bytes: 0,
  };
  const server = createServer((req, res) => {
    state.requests.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 6 });
    res.end('canary');
  });
  server.on('connection', (s) => {
    state.connections++;
    s.on('data', (d: Buffer) => (state.bytes += d.length));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const out = {
    server,
    port: (server.address() as AddressInfo).port,
    get connections() {
      return state.connections;
    },
    requests: state.requests,
    get bytes() {
      return state.bytes;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  return out;
}

t.test('address classification: every non-public range, hidden IPv4 in IPv6, metadata', async (t) => {
  const table: [string, AddressCategory | undefined][] = [
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'cgnat'],
    ['100.127.255.255', 'cgnat'],
    ['169.254.1.1', 'link-local'],
    ['169.254.169.254', 'metadata'],
    ['169.254.170.2', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['168.63.129.16', 'metadata'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['192.0.2.1', 'documentation'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['fe80::1', 'link-local'],
    ['fe80::1%lo', 'link-local'],
    ['fc00::1', 'unique-local'],
    ['fd12:3456::1', 'unique-local'],
    ['fd00:ec2::254', 'metadata'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::FFFF:A9FE:A9FE', 'metadata'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:10.0.0.1', 'private'],
    ['::127.0.0.1', 'loopback'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['2002:7f00:1::1', 'loopback'],
    ['2002:c0a8:101::', 'private'],
    ['2001:db8::1', 'documentation'],
    ['0:0:0:0:0:ffff:7f00:0001', 'loopback'],
    // public: classified as such, never connected to by any test
    ['8.8.8.8', undefined],
    ['172.32.0.1', undefined],
    ['100.128.0.1', undefined],
    ['2606:4700:4700::1111', undefined],
    ['::ffff:8.8.8.8', undefined],
  ];
  for (const [address, expected] of table) {
    t.equal(classifyAddress(address), expected, `${address} → ${expected ?? 'public'}`);
    if (expected) tally.record(`classify ${address}`, refusal(address.replace(/^\[|\]$/g, ''), { allowPrivate: false, allowed: [] }) !== undefined);
  }
  // allowPrivate opens everything but metadata; an explicit range opens exactly itself.
  t.equal(refusal('10.0.0.1', { allowPrivate: true, allowed: [] }), undefined);
  t.match(refusal('169.254.169.254', { allowPrivate: true, allowed: [] }), /metadata/);
  t.match(refusal('::ffff:169.254.169.254', { allowPrivate: true, allowed: [] }), /metadata/);
  t.match(refusal('not-an-ip', { allowPrivate: true, allowed: [] }), /not an IP address/);
});

const providerYaml = (baseUrl: string, allow?: string) => `providers:
  - name: corp
    kind: http
    match: https://data.corp/
    baseUrl: ${baseUrl}
${allow ? `    allowPrivateNetworks: ${allow}\n` : ''}`;

t.test('config: an IP-literal base URL in a refused range fails check-config, with its path', async (t) => {
  const refused = [
    'http://127.0.0.1:9000/',
    'http://2130706433/', // decimal 127.0.0.1
    'http://0x7f.0.0.1/',
    'http://0177.0.0.1/',
    'http://127.1/',
    'http://0/',
    'http://[::1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[::ffff:a9fe:a9fe]/',
    'http://169.254.169.254/latest/meta-data/',
    'http://[fd00:ec2::254]/',
    'http://10.0.0.1/',
    'http://100.64.0.1/',
    'http://[fe80::1]/',
    'http://[64:ff9b::a9fe:a9fe]/',
    'https://192.168.0.10/',
  ];
  for (const url of refused) {
    let problems: { path: string; message: string }[] = [];
    try {
      parseConfig(baseYaml(providerYaml(url)), { env: { KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: 'x' } });
    } catch (err) {
      if (err instanceof ConfigError) problems = err.problems;
      else throw err;
    }
    const hit = problems.find((p) => p.path === 'providers[0].baseUrl');
    tally.record(`config baseUrl ${url}`, hit !== undefined);
    t.match(hit?.message, /address: set allowPrivateNetworks/, `${url} refused at config time`);
  }
  // Metadata stays refused with `true`; only an explicit range opens it.
  const env = { KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: 'x' };
  t.throws(() => parseConfig(baseYaml(providerYaml('http://169.254.169.254/', 'true')), { env }), /metadata address/);
  t.ok(parseConfig(baseYaml(providerYaml('http://169.254.169.254/', '[169.254.169.254/32]')), { env }));
  t.ok(parseConfig(baseYaml(providerYaml('http://127.0.0.1:1/', 'true')), { env }));
  t.ok(parseConfig(baseYaml(providerYaml('http://127.0.0.1:1/', '[127.0.0.0/8]')), { env }));
  t.throws(() => parseConfig(baseYaml(providerYaml('http://127.0.0.1:1/', '[10.0.0.0/8]')), { env }), /loopback address/, 'another range does not open loopback');
  t.throws(() => parseConfig(baseYaml(providerYaml('http://127.0.0.1:1/', '[not-a-range]')), { env }), /list of IP addresses or CIDR ranges/);
  t.throws(() => parseConfig(baseYaml(providerYaml('http://127.0.0.1:1/', '["10.0.0.0/33"]')), { env }), /list of IP addresses or CIDR ranges/);
});

t.test('runtime: a host NAME that resolves to loopback is refused at connect time, nothing reaches it', async (t) => {
  const up = await startUpstream({ objects: { '/x.txt': { body: 'private bytes', type: 'text/plain' } } });
  t.teardown(() => up.close());
  // `localhost` is a name: only the resolved address can tell it is loopback.
  const { k, token } = await keyholeWith(t, providerYaml(`http://localhost:${up.port}/`), ['https://data.corp/']);
  for (let i = 0; i < 3; i++) {
    const res = await k.get(dataUrl('https://data.corp/x.txt'), { authorization: `Bearer ${token}` });
    t.equal(res.status, 502);
    t.equal(JSON.parse(res.body.toString()).error, 'upstream_address_refused');
    t.notOk(res.body.toString().includes(String(up.port)), 'no upstream address in the body');
    const audit = await auditFor(k, res.headers['x-request-id'] as string);
    t.match(audit, { reason: 'upstream_address_refused', status: 502 });
    tally.record(`localhost name, attempt ${i}`, res.status === 502 && up.log.length === 0);
  }
  t.equal(up.log.length, 0, 'the loopback upstream received nothing');
});

t.test('runtime: an allowance for another range does not open loopback; `true` does', async (t) => {
  const up = await startUpstream({ objects: { '/x.txt': { body: 'bytes', type: 'text/plain' } } });
  t.teardown(() => up.close());
  const { k: narrow, token } = await keyholeWith(t, providerYaml(`http://localhost:${up.port}/`, '[10.0.0.0/8, "fd00::/8"]'), ['https://data.corp/']);
  const refused = await narrow.get(dataUrl('https://data.corp/x.txt'), { authorization: `Bearer ${token}` });
  t.equal(refused.status, 502);
  tally.record('localhost with 10/8 allowed', refused.status === 502 && up.log.length === 0);
  t.equal(up.log.length, 0);

  const open = await startKeyhole(baseYaml(providerYaml(`http://localhost:${up.port}/`, 'true')));
  t.teardown(() => open.close());
  const ok = await open.get(dataUrl('https://data.corp/x.txt'), { authorization: `Bearer ${await open.token({ scope: ['https://data.corp/'] })}` });
  t.equal(ok.status, 200, 'explicit opt-in reaches the loopback upstream');
  t.equal(ok.body.toString(), 'bytes');
});

/** A pool to `origin` that may reach public addresses only (127.0.0.2 counts as public here), names resolved by `lookup`; closed on teardown. */
function publicOnlyPool(t: Test, origin: string, lookup: LookupFunction) {
  const pool = createPool(origin, {
    connections: 1,
    connectTimeoutMs: 2000,
    headersTimeoutMs: 2000,
    bodyTimeoutMs: 2000,
    addresses: { allowPrivate: false, allowed: [{ family: 4, value: 0x7f000002n, bits: 32 }] },
    lookup,
  });
  t.teardown(() => pool.close());
  return pool;
}

t.test('DNS rebinding: each connection checks the address it resolved; the private one is never reached', async (t) => {
  // This machine cannot make real DNS rebind, so a resolver that answers "public" first
  // and "private" after stands in for it. "Public" is 127.0.0.2 (explicitly allowed for
  // this provider, so no test traffic leaves the machine); "private" is 127.0.0.1.
  const pub = await canary('127.0.0.2');
  t.teardown(() => pub.close());
  const priv = await canary('127.0.0.1', pub.port);
  t.teardown(() => priv.close());
  let calls = 0;
  const rebinding: LookupFunction = (_host, options, cb) => {
    calls++;
    const address = calls === 1 ? '127.0.0.2' : '127.0.0.1';
    if (options.all) cb(null, [{ address, family: 4 }]);
    else cb(null, address, 4);
  };
  const pool = publicOnlyPool(t, `http://rebind.test:${pub.port}`, rebinding);
  const first = await pool.request({ path: '/one', method: 'GET', reset: true });
  t.equal(first.statusCode, 200);
  t.equal(await first.body.text(), 'canary');
  t.same(pub.requests, ['GET /one']);
  for (let i = 0; i < 3; i++) {
    const err = await pool.request({ path: `/two-${i}`, method: 'GET', reset: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.type(err, AddressRefused, `connection ${i + 2} refused after rebinding`);
    t.match((err as Error).message, /rebind\.test resolves to 127\.0\.0\.1 is a loopback address/);
    tally.record(`rebinding to 127.0.0.1, attempt ${i}`, err instanceof AddressRefused && priv.connections === 0);
  }
  t.ok(calls >= 4, 'the name was resolved again for each connection');
  t.equal(priv.connections, 0, 'the private address was never even connected');
  t.equal(pub.requests.length, 1);
});

t.test('DNS: an answer that mixes a public and a private address is refused whole', async (t) => {
  const priv = await canary('127.0.0.1');
  t.teardown(() => priv.close());
  const mixed: LookupFunction = (_host, options, cb) => {
    const all = [
      { address: '127.0.0.2', family: 4 },
      { address: '127.0.0.1', family: 4 },
    ];
    if (options.all) cb(null, all);
    else cb(null, '127.0.0.1', 4);
  };
  const pool = publicOnlyPool(t, `http://mixed.test:${priv.port}`, mixed);
  const err = await pool.request({ path: '/', method: 'GET' }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(err, AddressRefused);
  t.equal(priv.connections, 0);
  tally.record('mixed DNS answer', err instanceof AddressRefused && priv.connections === 0);
});

t.test('the connected socket is checked too: a connector that lands on loopback sends nothing', async (t) => {
  // Stands in for any resolver outside our hook (nscd, /etc/hosts, a proxy): the socket
  // really connects to 127.0.0.1, and the remote-address check closes it before a byte.
  const priv = await canary('127.0.0.1');
  t.teardown(() => priv.close());
  const lands = buildConnector({ lookup: ((_h, o, cb) => (o.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4))) as LookupFunction });
  const connect = guardedConnector(lands, { allowPrivate: false, allowed: [] });
  const err = await new Promise<Error | null>((resolve) => {
    connect({ hostname: 'somewhere.test', protocol: 'http:', port: String(priv.port) }, (...args) => resolve(args[0]));
  });
  t.type(err, AddressRefused);
  t.match(err?.message, /127\.0\.0\.1 is a loopback address/);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(priv.requests.length, 0, 'no request written');
  t.equal(priv.bytes, 0, 'not one byte sent on the refused socket');
  tally.record('post-connect remote address check', err instanceof AddressRefused && priv.bytes === 0);
  // And an IP literal is refused before any connection at all.
  const before = priv.connections;
  const literal = await new Promise<Error | null>((resolve) => connect({ hostname: '[::ffff:127.0.0.1]', protocol: 'http:', port: String(priv.port) }, (...args) => resolve(args[0])));
  t.type(literal, AddressRefused);
  t.equal(priv.connections, before, 'a refused literal is never connected');
  tally.record('IP literal at connect', literal instanceof AddressRefused);
  // Sanity: the same raw socket path does reach the canary when not guarded.
  const sock = netConnect(priv.port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  sock.destroy();
});

t.test('upstream redirects are never followed, to any origin; Location never reaches the client', async (t) => {
  const elsewhere = await canary('127.0.0.1');
  t.teardown(() => elsewhere.close());
  const target = `http://127.0.0.1:${elsewhere.port}/steal`;
  const up = await startUpstream({
    override: (req, res) => {
      const m = /^\/r(\d{3})/.exec(req.url ?? '');
      if (!m) return false;
      res.writeHead(Number(m[1]), { location: req.url!.includes('same') ? '/x.txt' : target, 'content-length': 0 });
      res.end();
      return true;
    },
    objects: { '/x.txt': { body: 'x' } },
  });
  t.teardown(() => up.close());
  const { k, token } = await keyholeWith(t, providerYaml(`${up.origin}/`, 'true'), ['https://data.corp/']);
  for (const code of [300, 301, 302, 303, 305, 307, 308]) {
    for (const kind of ['other', 'same']) {
      const res = await k.get(dataUrl(`https://data.corp/r${code}-${kind}`), { authorization: `Bearer ${token}` });
      t.equal(res.status, 502, `${code} (${kind} origin) → 502`);
      t.equal(res.headers.location, undefined, 'no Location relayed');
      t.equal(JSON.parse(res.body.toString()).error, 'upstream_status');
      tally.record(`redirect ${code} ${kind}`, res.status === 502 && res.headers.location === undefined && elsewhere.connections === 0);
    }
  }
  t.equal(elsewhere.connections, 0, 'the redirect target was never contacted');
  t.equal(up.log.filter((r) => r.url === '/x.txt').length, 0, 'not even a same-origin redirect is followed');
});

t.test('the URI never selects the host: hostile URIs reach the configured upstream or nothing', async (t) => {
  const elsewhere = await canary('127.0.0.1');
  t.teardown(() => elsewhere.close());
  const up = await startUpstream({ objects: { '/files/ok.txt': { body: 'ok' } } });
  t.teardown(() => up.close());
  const { k, token } = await keyholeWith(t, providerYaml(`${up.origin}/files/`, 'true'), ['https://data.corp/', `http://127.0.0.1:${elsewhere.port}/`, 'https://']);
  const p = elsewhere.port;
  const uris = [
    `https://data.corp/@127.0.0.1:${p}/x`,
    `https://data.corp/http:%2F%2F127.0.0.1:${p}%2Fx`,
    `https://data.corp//127.0.0.1:${p}/x`,
    `https://data.corp/%2F%2F127.0.0.1:${p}/x`,
    `https://data.corp/%252F%252F127.0.0.1/x`,
    `https://data.corp@127.0.0.1:${p}/x`,
    `https://data.corp:${p}@127.0.0.1/x`,
    `https://127.0.0.1:${p}/x`,
    `http://127.0.0.1:${p}/x`,
    `https://data.corp.127.0.0.1.nip.io/x`,
    `https://data.corp:${p}/x`,
    `https://data.corp/..%2F..%2F127.0.0.1:${p}`,
    `https://data.corp/x%0d%0aHost:%20127.0.0.1:${p}`,
    `https://data.corp/x%00.127.0.0.1`,
    `https://data.corp\\@127.0.0.1:${p}/x`,
    `https://data.corp/x?host=127.0.0.1:${p}`,
    `https://data.corp/x#@127.0.0.1:${p}`,
    `//127.0.0.1:${p}/x`,
    `https://[::1]:${p}/x`,
    `https://data.corp/%5C%5C127.0.0.1%5Cx`,
    `https://data.corp/%E2%80%AE127.0.0.1`,
    `https://DATA.CORP/ok.txt`,
  ];
  for (const uri of uris) {
    const before = up.log.length;
    const res = await k.get(dataUrl(uri), { authorization: `Bearer ${token}` });
    const reached = up.log.slice(before);
    const confined = reached.every((r) => r.url.startsWith('/files/') && r.headers.host === `127.0.0.1:${up.port}`);
    const held = elsewhere.connections === 0 && confined && (res.status >= 400 ? typeof JSON.parse(res.body.toString()).error === 'string' : reached.length === 1);
    t.ok(held, `${uri} → ${res.status}${reached.length ? ` (upstream saw ${reached[0]!.url})` : ''}`);
    tally.record(`uri ${uri}`, held);
  }
  t.equal(elsewhere.connections, 0, 'no URI made Keyhole connect anywhere but the configured upstream');
});

t.test('hostile inputs tally', async (t) => tally.report(t));
