// deploy/compose and deploy/systemd say the same as the Kubernetes base and the Dockerfile:
// one image, `serve --config`, ports 8443 and 9091, probes on the admin port, read-only
// and non-root, SIGTERM with time for the drain. Each side is read from its file, not
// written twice here. The compose config passes the real loader with its mounts stood in.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfigFile } from '../../src/config/load.ts';
import { testCerts } from '../helpers/certs.ts';
import { TEST_SECRET, ADMIN_TOKEN } from '../helpers/keyhole.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const DEPLOY = join(ROOT, 'deploy');
const read = (...p: string[]) => readFileSync(join(ROOT, ...p), 'utf8');

type Doc = Record<string, any>;
const k8s = parseAllDocuments(read('deploy', 'kubernetes', 'deployment.yaml')).map((d) => d.toJS() as Doc)[0]!;
const sidecar = (k8s.spec.template.spec.containers as Doc[]).find((c) => c.name === 'keyhole')!;
const dockerfile = read('Dockerfile').split('\n');
const compose = parse(read('deploy', 'compose', 'compose.yaml')) as Doc;
const service = compose.services.keyhole as Doc;

/** `[Section]` → key → every value (a key may repeat, as LoadCredential= does). */
function unit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) sections.set(section[1]!, (current = new Map()));
    else {
      const eq = line.indexOf('=');
      if (eq < 0 || !current) throw new Error(`not a unit line: ${line}`);
      const [k, v] = [line.slice(0, eq), line.slice(eq + 1)];
      current.set(k, [...(current.get(k) ?? []), v]);
    }
  }
  return sections;
}
const systemd = unit(read('deploy', 'systemd', 'keyhole.service'));
const svc = systemd.get('Service')!;
const one = (k: string) => svc.get(k)?.at(-1);

const seconds = (v: string): number => Number.parseInt(v, 10) * (/m$/.test(v) ? 60 : 1);

t.test('one image: compose runs the Kubernetes base’s image, built by the Dockerfile', async (t) => {
  t.equal(service.image, sidecar.image, 'compose image = the sidecar’s');
  t.equal(service.build.context, '../..', 'built from the repository root (the Dockerfile)');
  t.ok(dockerfile.some((l) => l.startsWith('ARG KEYHOLE_COMMIT')), 'the build argument compose passes exists');
  t.same(Object.keys(service.build.args), ['KEYHOLE_COMMIT']);
});

t.test('the same command, ports and probes everywhere', async (t) => {
  const cmd = /^CMD (\[.*\])$/.exec(dockerfile.find((l) => l.startsWith('CMD ')) ?? '')![1]!;
  const imageCmd = JSON.parse(cmd) as string[];
  t.same(service.command, imageCmd, 'compose: the image’s own serve --config /etc/keyhole/keyhole.yaml');
  t.same(sidecar.args.slice(0, 2), imageCmd.slice(0, 2), 'kubernetes: serve --config (its ConfigMap folder)');
  t.match(one('ExecStart'), new RegExp(`^/opt/keyhole/keyhole ${imageCmd.join(' ')}$`), 'systemd: the launcher with the same arguments');

  const exposed = dockerfile.find((l) => l.startsWith('EXPOSE '))!.split(' ').slice(1).map(Number);
  const k8sPorts = (sidecar.ports as Doc[]).map((p) => p.containerPort as number);
  t.same(k8sPorts, exposed, 'kubernetes ports = the image’s');
  t.same((service.ports as string[]).map((p) => Number(p.split(':').at(-1))), exposed, 'compose publishes the same two');
  t.match(service.ports[1], /^127\.0\.0\.1:9091:9091$/, 'compose: admin on the host’s loopback only');

  t.equal(sidecar.readinessProbe.httpGet.path, '/readyz');
  t.equal(sidecar.livenessProbe.httpGet.path, '/healthz');
  t.match(service.healthcheck.test.join(' '), /http:\/\/127\.0\.0\.1:9091\/readyz/, 'compose health = readiness on the admin port');
  t.match(dockerfile.join('\n'), /HEALTHCHECK[\s\S]*9091[\s\S]*\/healthz/, 'the image’s own healthcheck is on the admin port');
});

t.test('locked down alike: read-only root, /tmp only, non-root, no privileges', async (t) => {
  t.equal(sidecar.securityContext.readOnlyRootFilesystem, true);
  t.equal(service.read_only, true);
  t.same(service.tmpfs, ['/tmp']);
  t.ok((sidecar.volumeMounts as Doc[]).some((m) => m.mountPath === '/tmp'), 'kubernetes: /tmp is its one writable mount');
  t.same(service.cap_drop, ['ALL']);
  t.same(sidecar.securityContext.capabilities.drop, ['ALL']);
  t.ok(dockerfile.includes('USER node'), 'the image runs as node (uid 1000)');
  t.equal(service.user, '1000:1000');
  t.same(service.security_opt, ['no-new-privileges:true']);
  t.equal(one('NoNewPrivileges'), 'yes');
  t.equal(one('DynamicUser'), 'yes');
  t.equal(one('ProtectSystem'), 'strict');
  t.equal(one('CapabilityBoundingSet'), '', 'no capabilities');
  t.equal(one('SystemCallFilter'), '@system-service');
  t.notOk(svc.has('MemoryDenyWriteExecute'), 'not set: V8 writes machine code');
  for (const m of service.volumes as string[]) t.match(m, /:ro$/, `compose mount read-only: ${m}`);
});

t.test('SIGTERM drains and every stop waits longer than the drain; SIGHUP reloads', async (t) => {
  const cfg = parse(read('deploy', 'compose', 'keyhole.yaml')) as Doc;
  const drain = seconds(cfg.server.drainTimeout as string);
  t.equal(service.stop_signal, 'SIGTERM');
  t.ok(seconds(service.stop_grace_period) > drain, `compose stop_grace_period ${service.stop_grace_period} > drain ${drain}s`);
  t.equal(one('KillSignal'), 'SIGTERM');
  t.ok(seconds(one('TimeoutStopSec')!) > drain, 'systemd TimeoutStopSec > drain');
  t.ok(k8s.spec.template.spec.terminationGracePeriodSeconds > drain, 'kubernetes grace > drain');
  t.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID', 'systemctl reload sends SIGHUP');
  t.match(dockerfile.join('\n'), /STOPSIGNAL SIGTERM/);
});

t.test('the launcher systemd starts is the one the README uses, with the image’s node flags', async (t) => {
  const launcher = read('keyhole');
  const flags = /^ENTRYPOINT \["node", (.*), "dist\/cli\.js"\]$/.exec(dockerfile.find((l) => l.startsWith('ENTRYPOINT ')) ?? '')![1]!;
  t.match(launcher, new RegExp(`exec "\\$node" ${(JSON.parse(`[${flags}]`) as string[]).join(' ')} "\\$root/src/cli.ts" "\\$@"`));
  t.same(svc.get('LoadCredential'), ['hs256-secret:/etc/keyhole/secrets/hs256-secret', 'admin-token:/etc/keyhole/secrets/admin-token'], 'secrets as credentials');
});

t.test('compose’s keyhole.yaml passes the real loader, its mounts stood in', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'keyhole-compose-'));
  const c = testCerts();
  const stand = (path: string, from?: string) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    if (from) copyFileSync(from, join(root, path));
  };
  stand('/etc/keyhole/tls/tls.crt', c.serverCert);
  stand('/etc/keyhole/tls/tls.key', c.serverKey);
  mkdirSync(join(root, 'srv', 'data'), { recursive: true });
  const yaml = read('deploy', 'compose', 'keyhole.yaml').replaceAll('/etc/keyhole/', `${root}/etc/keyhole/`).replaceAll('/srv/data', `${root}/srv/data`);
  const file = join(root, 'keyhole.yaml');
  writeFileSync(file, yaml);
  // The two variables compose refuses to start without, and nothing else.
  const env = Object.fromEntries([...read('deploy', 'compose', 'compose.yaml').matchAll(/\$\{(KEYHOLE_[A-Z0-9_]+):\?/g)].map((m) => [m[1]!, m[1] === 'KEYHOLE_HS256_SECRET' ? TEST_SECRET : ADMIN_TOKEN]));
  t.same(Object.keys(env).sort(), ['KEYHOLE_ADMIN_TOKEN', 'KEYHOLE_HS256_SECRET']);
  const cfg = loadConfigFile(file, { env });
  t.equal(cfg.server.listen.port, 8443);
  t.equal(cfg.admin.listen.port, 9091);
  t.equal(cfg.admin.listen.host, '0.0.0.0', 'reachable through the container’s published port');
});

t.test('docker compose config and systemd-analyze verify, where this machine has them', async (t) => {
  const hasCompose = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' }).status === 0;
  if (hasCompose) {
    const r = spawnSync('docker', ['compose', '-f', join(DEPLOY, 'compose', 'compose.yaml'), 'config', '--quiet'], { encoding: 'utf8', env: { ...process.env, KEYHOLE_HS256_SECRET: TEST_SECRET, KEYHOLE_ADMIN_TOKEN: ADMIN_TOKEN } });
    t.equal(r.status, 0, `docker compose config: ${r.stderr}`);
  } else {
    t.ok(compose.services && compose.name === 'keyhole', 'no `docker compose` here: the file parsed as YAML with its services (above) is the check');
  }
  const hasAnalyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' }).status === 0;
  if (hasAnalyze) {
    const r = spawnSync('systemd-analyze', ['verify', join(DEPLOY, 'systemd', 'keyhole.service')], { encoding: 'utf8' });
    t.notMatch(r.stderr, /Unknown (key|section)|Invalid|Failed to parse/i, `systemd-analyze verify: ${r.stderr}`);
  } else {
    t.same([...systemd.keys()], ['Unit', 'Service', 'Install'], 'no systemd-analyze here: the unit parsed into its three sections is the check');
  }
});
