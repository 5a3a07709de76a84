// deploy/kubernetes stays true to Keyhole: the ConfigMap's keyhole.yaml passes the real config
// loader (with the mounted files stood in by test files), every file it names is mounted
// from the Secret that holds it, the probes hit the admin listener's /healthz and /readyz,
// the drain fits in the grace period, and the container runs locked down.
import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { loadConfigFile } from '../../src/config/load.ts';
import { testCerts } from '../helpers/certs.ts';

const DIR = join(import.meta.dirname, '..', '..', 'deploy', 'kubernetes');

type Doc = Record<string, any>;
const docs = (file: string): Doc[] => parseAllDocuments(readFileSync(join(DIR, file), 'utf8')).map((d) => d.toJS() as Doc);
const all = ['configmap.yaml', 'deployment.yaml', 'service.yaml', 'secret.example.yaml'].flatMap(docs);
const find = (kind: string, name?: string) => all.find((d) => d.kind === kind && (!name || d.metadata.name === name))!;

const deployment = find('Deployment');
const pod = deployment.spec.template.spec;
const keyhole = pod.containers.find((c: Doc) => c.name === 'keyhole');
const configYaml: string = find('ConfigMap', 'keyhole-config').data['keyhole.yaml'];

/** The Secret (or ConfigMap) behind the volume mounted at the longest prefix of `path`. */
function source(path: string): { volume: Doc; key: string } | undefined {
  const mount = (keyhole.volumeMounts as Doc[]).filter((m) => path.startsWith(m.mountPath + '/')).sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!mount) return undefined;
  return { volume: pod.volumes.find((v: Doc) => v.name === mount.name), key: path.slice(mount.mountPath.length + 1) };
}

t.test('the sidecar config passes the real loader', async (t) => {
  // Stand in for the mounts: the same paths under a temp root, with real test material.
  const root = mkdtempSync(join(tmpdir(), 'keyhole-k8s-'));
  const c = testCerts();
  const files: Record<string, string> = {
    '/etc/keyhole/tls/tls.crt': c.serverCert,
    '/etc/keyhole/tls/tls.key': c.serverKey,
    '/etc/keyhole/mtls/ca.crt': c.caCert,
    '/etc/keyhole/mtls/tls.crt': c.clientCert,
    '/etc/keyhole/mtls/tls.key': c.clientKey,
  };
  for (const [path, from] of Object.entries(files)) {
    mkdirSync(dirname(root + path), { recursive: true });
    copyFileSync(from, root + path);
  }
  mkdirSync(root + '/var/run/secrets/keyhole', { recursive: true });
  writeFileSync(root + '/var/run/secrets/keyhole/admin-token', 'admin-token-0123456789abcdef\n');
  writeFileSync(root + '/var/run/secrets/keyhole/hs256-secret', 'a-secret-of-at-least-thirty-two-bytes-0123\n');
  writeFileSync(root + '/var/run/secrets/keyhole/upstream-password', 'pw\n');
  const file = join(root, 'keyhole.yaml');
  writeFileSync(file, configYaml.replace(/(\/etc\/keyhole\/|\/var\/run\/secrets\/keyhole\/)/g, `${root}$1`));
  const cfg = loadConfigFile(file);
  t.equal(cfg.providers.length, 1);
  t.equal(cfg.workers, 2, 'workers pinned to the CPU limit');
  t.equal(Number(keyhole.resources.limits.cpu), cfg.workers, 'one worker per CPU of the limit');

  const ports = Object.fromEntries((keyhole.ports as Doc[]).map((p) => [p.name, p.containerPort]));
  t.equal(ports.https, cfg.server.listen.port, 'the https port is the data listener');
  t.equal(ports.admin, cfg.admin.listen.port, 'the admin port is the admin listener');
  t.equal(cfg.admin.listen.host, '0.0.0.0', 'the kubelet can reach the probes');
  const preStop = keyhole.lifecycle?.preStop?.sleep?.seconds ?? 0;
  t.ok(cfg.server.drainTimeout / 1000 + preStop < pod.terminationGracePeriodSeconds, 'the drain fits in the grace period');
});

t.test('every file the config names is mounted from the Secret that holds it', async (t) => {
  const paths = [...configYaml.matchAll(/(\/(?:etc\/keyhole|var\/run\/secrets\/keyhole)\/[\w./-]+)/g)].map((m) => m[1]!);
  t.ok(paths.length >= 8, `${paths.length} file paths in the config`);
  const secrets = all.filter((d) => d.kind === 'Secret');
  for (const path of paths) {
    const src = source(path);
    t.ok(src, `${path} is under a volume mount`);
    if (!src) continue;
    const name = src.volume.secret?.secretName;
    t.ok(name, `${path} comes from a Secret`);
    const secret = secrets.find((s) => s.metadata.name === name);
    t.ok(secret && src.key in secret.stringData, `Secret ${name} holds ${src.key}`);
  }
  const cfgMount = source(keyhole.args[keyhole.args.indexOf('--config') + 1]);
  t.equal(cfgMount?.volume.configMap?.name, 'keyhole-config', 'the config comes from the ConfigMap');
  t.equal(cfgMount?.key, 'keyhole.yaml');
});

t.test('probes on /healthz and /readyz; the container is locked down', async (t) => {
  t.match(keyhole.livenessProbe.httpGet, { path: '/healthz', port: 'admin' });
  t.match(keyhole.readinessProbe.httpGet, { path: '/readyz', port: 'admin' });
  t.equal(pod.securityContext.runAsNonRoot, true);
  t.match(keyhole.securityContext, { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
  t.ok(keyhole.securityContext.runAsUser > 0, 'a non-root uid');
  const service = find('Service');
  t.same(service.spec.ports.map((p: Doc) => p.targetPort), ['https'], 'only HTTPS is exposed; the app and admin stay in the Pod');
  t.match(configYaml, /upstream: http:\/\/127\.0\.0\.1:8080/, 'the app is reached on loopback inside the Pod');
});
