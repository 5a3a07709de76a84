// The integration kits in examples/ stay runnable as written. Docker is not run here, so
// each kit's containers are stood in for: its keyhole.yaml is loaded by the real config
// loader against a temp "container file system" built from compose.yaml's mounts (the
// certificates made by the same code the `certs` service runs), with only the environment
// compose passes. Then what ties the files together is checked: mounts, ports, service
// names, certificate names, the secrets .env must hold, the Label Studio environment block
// and the sample tasks.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { loadConfigFile } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { ensureDevMaterial } from '../../src/config/default.ts';
import { ensureDevCerts } from '../../src/tls/devca.ts';
import { loadRouting } from '../../src/cli/config-part.ts';
import { rewriteExport, routingRegistry } from '../../src/cli/task-uris.ts';

const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples');

type Doc = Record<string, any>;
interface Mount {
  source: string;
  target: string;
  /** a named volume, or a path on the host (absolute) */
  volume?: string;
  host?: string;
}

function mounts(service: Doc, kitDir: string): Mount[] {
  return ((service.volumes ?? []) as string[]).map((v) => {
    const [source, target] = v.split(':') as [string, string];
    return source.startsWith('.') || source.startsWith('/') ? { source, target, host: resolve(kitDir, source) } : { source, target, volume: source };
  });
}

/** The one-shot `certs` service: which --host names its server certificate gets, which files it makes readable. */
function certsService(compose: Doc) {
  const script = ([] as string[]).concat(compose.services.certs.command).join(' ');
  return {
    hosts: [...script.matchAll(/--host (\S+)/g)].map((m) => m[1]!),
    readable: new Set((/chmod 0644 ([^&]+)/.exec(script)?.[1] ?? '').trim().split(/\s+/)),
    mountTarget: mounts(compose.services.certs, '').find((m) => m.volume)!.target,
  };
}

/** Every `${NAME}` compose interpolates, and the names the README's `.env` step writes. */
function composeVariables(text: string): Set<string> {
  return new Set([...text.matchAll(/(?<!\$)\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}/g)].map((m) => m[1]!));
}
function envStep(readme: string): Set<string> {
  const heredoc = /cat > \.env <<EOF\n([\s\S]*?)\nEOF/.exec(readme)?.[1] ?? '';
  return new Set(heredoc.split('\n').map((l) => l.split('=')[0]!.trim()).filter(Boolean));
}

interface Kit {
  dir: string;
  compose: Doc;
  configText: string;
  tree: Doc;
  cfg: Config;
  /** the temp folder standing for the keyhole container's root */
  root: string;
}

/** Builds the keyhole container's mounted files under a temp root and loads the config there. */
async function loadKit(name: string): Promise<Kit> {
  const dir = join(EXAMPLES, name);
  const composeText = readFileSync(join(dir, 'compose.yaml'), 'utf8');
  const compose = parse(composeText) as Doc;
  const keyhole = compose.services.keyhole;
  const root = mkdtempSync(join(tmpdir(), `keyhole-example-${name}-`));
  const certs = certsService(compose);
  for (const m of mounts(keyhole, dir)) {
    const at = join(root, m.target);
    mkdirSync(dirname(at), { recursive: true });
    if (m.host) cpSync(m.host, at, { recursive: true });
    else if (m.volume === 'certs') {
      await ensureDevCerts(at, { hosts: certs.hosts });
      await ensureDevMaterial(at);
    } else mkdirSync(at, { recursive: true });
  }
  const configTarget = keyhole.command[keyhole.command.indexOf('--config') + 1] as string;
  const configText = readFileSync(join(root, configTarget), 'utf8');
  // Absolute container paths → the same paths under the temp root.
  const file = join(root, 'keyhole.loaded.yaml');
  writeFileSync(file, configText.replace(/(?<=[\s:"'{[,])\/(?=(etc|data|run|var|opt)\/)/g, `${root}/`));
  const env = Object.fromEntries(Object.keys(keyhole.environment ?? {}).map((k) => [k, `example-${k.toLowerCase()}-value`]));
  const cfg = loadConfigFile(file, { env });
  return { dir, compose, configText, tree: parse(configText) as Doc, cfg, root };
}

const portOf = (url: string) => Number(new URL(url).port || (url.startsWith('https') ? 443 : 80));

t.test('the kits', async (t) => {
  const kits = readdirSync(EXAMPLES).filter((d) => existsSync(join(EXAMPLES, d, 'compose.yaml')));
  t.ok(kits.includes('label-studio') && kits.includes('flask-app'), `kits: ${kits.join(', ')}`);
  for (const name of kits) {
    t.test(name, async (t) => {
      const kit = await loadKit(name);
      const { compose, cfg, dir } = kit;
      const services = compose.services as Record<string, Doc>;
      const keyhole = services.keyhole!;
      const readme = readFileSync(join(dir, 'README.md'), 'utf8');

      t.test('every file compose mounts exists', async (t) => {
        for (const [svc, s] of Object.entries(services)) {
          for (const m of mounts(s, dir)) if (m.host) t.ok(existsSync(m.host), `${svc}: ${m.source}`);
          if (s.build && typeof s.build === 'string') t.ok(existsSync(join(dir, s.build, 'Dockerfile')), `${svc}: ${s.build}/Dockerfile`);
          if (s.build?.context) t.ok(existsSync(join(dir, s.build.context, s.build.dockerfile ?? 'Dockerfile')), `${svc}: Keyhole's Dockerfile`);
          for (const f of s.env_file ?? []) t.ok(existsSync(join(dir, f)), `${svc}: ${f}`);
        }
        const cfgMount = mounts(keyhole, dir).find((m) => m.target === keyhole.command[keyhole.command.indexOf('--config') + 1]);
        t.equal(cfgMount?.source, './keyhole.yaml', 'Keyhole runs the keyhole.yaml beside compose.yaml');
      });

      t.test('ports: HTTPS published, admin on loopback only', async (t) => {
        const ports = (keyhole.ports ?? []) as string[];
        t.ok(ports.some((p) => p.endsWith(`:${cfg.server.listen.port}`) && !p.startsWith('127.')), `${cfg.server.listen.port} is published`);
        const admin = ports.filter((p) => p.endsWith(`:${cfg.admin.listen.port}`));
        t.ok(admin.every((p) => p.startsWith('127.0.0.1:')), 'the admin port, if published, only on 127.0.0.1');
        t.equal(portOf(cfg.server.publicUrl!), Number(ports[0]!.split(':').at(-2)), 'publicUrl names the published port');
      });

      t.test('the app and every service Keyhole talks to are compose services', async (t) => {
        const upstream = new URL(cfg.app!.upstream);
        t.ok(services[upstream.hostname], `app.upstream ${upstream.hostname}`);
        const app = services[upstream.hostname]!;
        const portSource = app.build ? readFileSync(join(dir, app.build, 'Dockerfile'), 'utf8') : JSON.stringify(app.healthcheck ?? {});
        t.match(portSource, `:${upstream.port}`, "the app listens on the upstream's port");
        t.equal(app.ports, undefined, 'the app is not published: browsers reach it through Keyhole only');
        for (const url of [kit.tree.auth?.introspect?.url, cfg.redis?.url].filter(Boolean) as string[]) {
          t.ok(services[new URL(url).hostname], `${url}`);
        }
        const kh = keyhole.depends_on as Record<string, unknown>;
        t.ok(kh[upstream.hostname] && kh.certs, 'Keyhole starts after the certificates and with the app');
      });

      t.test('certificates: made for the names used, readable by the services', async (t) => {
        const certs = certsService(compose);
        const server = new X509Certificate(readFileSync(join(kit.root, '/etc/keyhole/certs/server.pem')));
        const names = (server.subjectAltName ?? '').split(', ');
        const publicHost = new URL(cfg.server.publicUrl!).hostname;
        t.ok(names.includes(`DNS:${publicHost}`), `the server certificate names ${publicHost}`);
        if (cfg.redis?.url) t.ok(names.includes(`DNS:${new URL(cfg.redis.url).hostname}`), 'and the Redis host (Redis serves the same certificate)');
        const fromVolume = [...kit.configText.matchAll(/\/etc\/keyhole\/certs\/([\w.-]+)/g)].map((m) => m[1]!);
        t.ok(fromVolume.length >= 4, `${fromVolume.length} files from the certs volume`);
        for (const f of fromVolume) t.ok(certs.readable.has(f), `${f} is made readable for Keyhole (uid 1000)`);
        t.notOk(certs.readable.has('ca-key.pem'), 'the CA key stays private');
        for (const [svc, s] of Object.entries(services)) {
          if (svc === 'certs' || svc === 'keyhole') continue;
          const target = mounts(s, dir).find((m) => m.volume === 'certs')?.target;
          if (!target) continue;
          const used = [...JSON.stringify([s.command, s.environment, s.healthcheck]).matchAll(new RegExp(`${target}/([\\w.-]+)`, 'g'))].map((m) => m[1]!);
          t.ok(used.length > 0, `${svc} uses the certs volume`);
          for (const f of used) t.ok(certs.readable.has(f) && existsSync(join(kit.root, '/etc/keyhole/certs', f)), `${svc}: ${f} is made and readable`);
        }
      });

      t.test('secrets: compose passes what the config reads; .env holds what compose reads', async (t) => {
        const envRefs = [...kit.configText.matchAll(/\$\{env:([A-Z0-9_]+)\}/g)].map((m) => m[1]!);
        for (const e of envRefs) t.ok(e in (keyhole.environment ?? {}), `${e} is passed to Keyhole`);
        const wanted = composeVariables(readFileSync(join(dir, 'compose.yaml'), 'utf8'));
        const written = envStep(readme);
        t.ok(wanted.size > 0, `${wanted.size} variables`);
        for (const v of wanted) t.ok(written.has(v), `the README's .env step writes ${v}`);
        t.notMatch(kit.configText, /secret:\s*["']?[^"'$\s{]/, 'no inline secret');
      });
    });
  }
});

/** label-studio.env as Label Studio reads it: NAME=VALUE lines. */
function envFile(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

t.test('label-studio: the environment block fits Keyhole in front', async (t) => {
  const kit = await loadKit('label-studio');
  const dir = kit.dir;
  const env = envFile(join(dir, 'label-studio.env'));
  const publicUrl = new URL(kit.cfg.server.publicUrl!);
  t.equal(env.LABEL_STUDIO_HOST, publicUrl.origin, 'LABEL_STUDIO_HOST is the public origin');
  t.ok(env.CSRF_TRUSTED_ORIGINS?.split(',').includes(publicUrl.origin), 'CSRF_TRUSTED_ORIGINS has the origin with its scheme (Django 4+)');
  const allowed = env.ALLOWED_HOSTS?.split(',') ?? [];
  t.ok(allowed.includes(publicUrl.hostname), 'ALLOWED_HOSTS has the public host');
  t.ok(allowed.includes(new URL(kit.tree.auth.introspect.url).hostname), 'and the name Keyhole uses for whoami');
  for (const k of ['SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'CSRF_COOKIE_HTTPONLY']) t.match(env[k], /^[01]$/, `${k} is 0 or 1: Label Studio parses it with int()`);
  t.equal(env.CSRF_COOKIE_HTTPONLY, '0', "the frontend's CSRF cookie stays readable");
  t.ok(kit.cfg.app!.cookies.scriptReadable.includes('csrftoken'), 'and Keyhole leaves it script-readable');

  // SECURE_PROXY_SSL_HEADER comes from a settings module on PYTHONPATH, mounted outside /label-studio.
  const ls = kit.compose.services['label-studio'];
  const settingsPath = `${env.PYTHONPATH}/${env.DJANGO_SETTINGS_MODULE}.py`;
  const mount = mounts(ls, dir).find((m) => m.target === settingsPath);
  t.ok(mount?.host && existsSync(mount.host), `${settingsPath} is mounted`);
  t.notOk(settingsPath.startsWith('/label-studio/'), "outside /label-studio, which the image's entrypoint chowns");
  const settings = readFileSync(mount!.host!, 'utf8');
  t.match(settings, /^from core\.settings\.label_studio import \*/m, "Label Studio's own settings first");
  t.match(settings, /^SECURE_PROXY_SSL_HEADER = \('HTTP_X_FORWARDED_PROTO', 'https'\)$/m, 'then SECURE_PROXY_SSL_HEADER');

  const introspect = kit.tree.auth.introspect;
  t.equal(new URL(introspect.url).pathname, '/api/current-user/whoami');
  t.same(introspect.logout.paths, ['/logout'], "Label Studio's logout URL (users/urls.py: ^logout/?$)");
  t.equal(introspect.logout.sessionCookie, 'sessionid');
  t.equal(kit.cfg.revocation.store, 'redis', 'logouts and revocations shared through Redis');
  t.match(ls.image, /^heartexlabs\/label-studio:\d+\.\d+\.\d+$/, 'Label Studio pinned to a release');

  const redisCmd = (kit.compose.services.redis.command as string[]).join(' ');
  t.match(redisCmd, `--tls-port ${new URL(kit.cfg.redis!.url!).port}`, "Redis's TLS port is the one Keyhole dials");
  t.match(redisCmd, /--port 0\b/, 'no plaintext port');
  t.match(redisCmd, /--tls-auth-clients yes/, 'client certificates required');
});

t.test('label-studio: the sample tasks load through the provider, and rewrite', async (t) => {
  const kit = await loadKit('label-studio');
  const dir = kit.dir;
  const tasks = JSON.parse(readFileSync(join(dir, 'tasks', 'tasks.json'), 'utf8')) as { data: Record<string, string> }[];
  const project = JSON.parse(readFileSync(join(dir, 'tasks', 'project.json'), 'utf8')) as { label_config: string };
  const vars = [...project.label_config.matchAll(/\$(\w+)/g)].map((m) => m[1]!);
  t.ok(vars.length >= 2, 'the labeling config reads task data');
  for (const task of tasks) for (const v of vars) t.ok(v in task.data, `every task has $${v}`);

  // minio-init copies ./images to the bucket prefix the tasks name.
  const init = ([] as string[]).concat(kit.compose.services['minio-init'].command).join(' ');
  const [, bucket] = /mc mb --ignore-existing local\/(\S+)/.exec(init) ?? [];
  const [, prefix] = /mc cp --recursive \/images\/ local\/(\S+)/.exec(init) ?? [];
  t.ok(bucket && prefix?.startsWith(`${bucket}/`), `bucket ${bucket}, prefix ${prefix}`);
  t.ok(mounts(kit.compose.services['minio-init'], dir).some((m) => m.target === '/images' && m.source === './images'));
  for (const task of tasks) {
    const uri = task.data.image!;
    t.ok(uri.startsWith(`s3://${prefix}`), `${uri} is under the uploaded prefix`);
    t.ok(statSync(join(dir, 'images', uri.slice(`s3://${prefix}`.length))).size > 0, 'and its image is in ./images');
  }
  const provider = kit.cfg.providers.find((p) => p.name === kit.tree.auth.introspect.providers[0]);
  t.ok(provider && provider.kind === 's3', 'introspected sessions read the s3 provider');

  const routing = loadRouting(join(kit.root, 'keyhole.loaded.yaml'));
  const doc: unknown = structuredClone(tasks);
  const report = rewriteExport(doc, 'json', { to: 'keyhole', base: '', registry: routingRegistry(routing.providers), maxUriLength: routing.maxUriLength });
  t.equal(report.rewritten, tasks.length, 'keyhole tasks rewrite turns every image URI into a Keyhole URL');
  const first = (doc as { data: Record<string, string> }[])[0]!.data.image!;
  t.equal(new URL(first, 'https://x').searchParams.get('uri'), tasks[0]!.data.image, 'which carries the URI');
});

t.test('flask-app: the app mints what Keyhole accepts, for folders that exist', async (t) => {
  const kit = await loadKit('flask-app');
  const app = readFileSync(join(kit.dir, 'app', 'app.py'), 'utf8');
  const auth = kit.cfg.auth;
  t.match(app, `'iss': '${auth.issuer}', 'aud': '${auth.audience}'`, 'issuer and audience match auth');
  const kid = /headers=\{'kid': '([^']+)'\}/.exec(app)?.[1];
  t.ok(auth.keys.some((k) => 'kid' in k && k.kid === kid && (k.algorithms as readonly string[]).includes('HS256')), `kid ${kid} is an HS256 key`);
  const scopePrefix = /'scope': \[f'([^{]+)\{/.exec(app)?.[1];
  const provider = kit.cfg.providers.find((p) => scopePrefix?.startsWith(p.match));
  t.ok(provider?.kind === 'local', `the scope ${scopePrefix} is a local provider's`);
  const projects = [...app.matchAll(/'(project-\d+)'/g)].map((m) => m[1]!);
  const images = [...(/IMAGES = \[([^\]]+)\]/.exec(app)?.[1] ?? '').matchAll(/'([^']+)'/g)].map((m) => m[1]!);
  t.ok(projects.length === 2 && images.length > 0, 'two projects of images');
  const root = provider && 'root' in provider ? provider.root : '';
  for (const p of projects) for (const i of images) t.ok(existsSync(join(root, p, i)), `${p}/${i} is mounted under the provider root`);

  const svc = kit.compose.services.app;
  const certsAt = mounts(svc, kit.dir).find((m) => m.volume === 'certs')?.target;
  for (const k of ['KEYHOLE_SECRET_FILE', 'KEYHOLE_ADMIN_TOKEN_FILE']) t.ok(svc.environment[k].startsWith(`${certsAt}/`), `${k} is in the certs volume`);
  t.equal(new URL(svc.environment.KEYHOLE_ADMIN_URL).port, String(kit.cfg.admin.listen.port), 'the app reaches the admin listener');
  t.equal(kit.cfg.admin.listen.host, '0.0.0.0', 'on the compose network');
});
