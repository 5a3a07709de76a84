// Real upstream servers for the relay tests, on ephemeral loopback ports: nginx (Debian's)
// with a server block of the test's own, and Python's http.server (HTTP/1.0: it frames
// CGI output by closing the connection). Each is stopped by the test's teardown.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { freePort } from './redis.ts';


/** A server's own folder (config, files, logs): stopWith removes it once the server is gone. */
function serverDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `keyhole-${name}-`));
}

export interface RealServer {
  origin: string;
  /** where the server's files live */
  dir: string;
}

/** Resolves once `port` accepts a connection; throws if `child` exits first (`detail`: what to tell then). */
export async function waitListening(port: number, child: ChildProcess, what: string, detail: () => string = () => ''): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}${detail()}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${what} never listened on ${port}`);
}

function stopWith(t: Test, child: ChildProcess, dir?: string): void {
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });
}

/** nginx in the foreground with `server` as the body of its one server block (after `listen`). */
export async function startNginx(t: Test, server: string, files: Record<string, string | Buffer> = {}): Promise<RealServer> {
  const dir = serverDir('nginx');
  // Run as root, nginx's worker runs as an unprivileged user: it must reach the files.
  chmodSync(dir, 0o755);
  const root = join(dir, 'www');
  mkdirSync(join(dir, 'tmp'));
  mkdirSync(root);
  for (const [name, body] of Object.entries(files)) writeFileSync(join(root, name), body);
  const port = await freePort();
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp; proxy_temp_path ${dir}/tmp; fastcgi_temp_path ${dir}/tmp;
  uwsgi_temp_path ${dir}/tmp; scgi_temp_path ${dir}/tmp;
  server {
    listen 127.0.0.1:${port};
    root ${root};
${server}
  }
}
`,
  );
  const child = spawn('/usr/sbin/nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir, '-e', join(dir, 'error.log')], { stdio: 'ignore' });
  stopWith(t, child, dir);
  await waitListening(port, child, 'nginx');
  return { origin: `http://127.0.0.1:${port}`, dir: root };
}

/**
 * `python3 -m http.server --cgi` (Debian's Python): HTTP/1.0, files with Content-Length,
 * and the output of the scripts in cgi-bin/ framed by closing the connection.
 */
export async function startPythonHttpServer(t: Test, files: Record<string, string | Buffer>, cgi: Record<string, string> = {}): Promise<RealServer> {
  const dir = serverDir('python');
  // Run as root, http.server runs CGI scripts as `nobody`: it must reach them.
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'cgi-bin'));
  for (const [name, body] of Object.entries(files)) writeFileSync(join(dir, name), body);
  for (const [name, script] of Object.entries(cgi)) {
    writeFileSync(join(dir, 'cgi-bin', name), script);
    chmodSync(join(dir, 'cgi-bin', name), 0o755);
  }
  const port = await freePort();
  const child = spawn('/usr/bin/python3', ['-m', 'http.server', '--cgi', '--bind', '127.0.0.1', String(port)], { cwd: dir, stdio: 'ignore' });
  stopWith(t, child, dir);
  await waitListening(port, child, 'python3 -m http.server');
  return { origin: `http://127.0.0.1:${port}`, dir };
}

/**
 * Debian's gunicorn (its sync worker: `Connection: close` on every answer) running the WSGI
 * application `app` (Python source defining `application`), as Django and Flask apps run;
 * `env` is added to its environment (the app's settings).
 */
export async function startGunicorn(t: Test, app: string, env: Record<string, string> = {}): Promise<RealServer> {
  const dir = serverDir('gunicorn');
  writeFileSync(join(dir, 'wsgi_app.py'), app);
  const port = await freePort();
  const child = spawn('/usr/bin/python3', ['-m', 'gunicorn', '--bind', `127.0.0.1:${port}`, '--workers', '1', '--chdir', dir, 'wsgi_app:application'], { cwd: dir, stdio: 'ignore', env: { ...process.env, ...env } });
  stopWith(t, child, dir);
  await waitListening(port, child, 'gunicorn');
  return { origin: `http://127.0.0.1:${port}`, dir };
}

/** Debian's uvicorn running the ASGI application `app` (Python source defining `app`). */
export async function startUvicorn(t: Test, app: string): Promise<RealServer> {
  const dir = serverDir('uvicorn');
  writeFileSync(join(dir, 'asgi_app.py'), app);
  const port = await freePort();
  const child = spawn('/usr/bin/python3', ['-m', 'uvicorn', '--host', '127.0.0.1', '--port', String(port), '--app-dir', dir, '--no-access-log', '--log-level', 'warning', 'asgi_app:app'], { cwd: dir, stdio: 'ignore' });
  stopWith(t, child, dir);
  await waitListening(port, child, 'uvicorn');
  return { origin: `http://127.0.0.1:${port}`, dir };
}

/** Debian's Caddy serving `files` with its file_server (admin API off: several may run). */
export async function startCaddy(t: Test, files: Record<string, string | Buffer>): Promise<RealServer> {
  const dir = serverDir('caddy');
  const root = join(dir, 'www');
  mkdirSync(root);
  for (const [name, body] of Object.entries(files)) writeFileSync(join(root, name), body);
  const port = await freePort();
  // Any Host (the app front forwards the browser's), bound to loopback only.
  writeFileSync(join(dir, 'Caddyfile'), `{\n  admin off\n  auto_https off\n}\nhttp://:${port} {\n  bind 127.0.0.1\n  root * ${root}\n  file_server\n}\n`);
  const child = spawn('/usr/bin/caddy', ['run', '--config', join(dir, 'Caddyfile'), '--adapter', 'caddyfile'], { cwd: dir, stdio: 'ignore', env: { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir } });
  stopWith(t, child, dir);
  await waitListening(port, child, 'caddy');
  return { origin: `http://127.0.0.1:${port}`, dir: root };
}

/** Debian's Apache httpd in the foreground (-X: one process), serving `files`. */
export async function startApache(t: Test, files: Record<string, string | Buffer>): Promise<RealServer> {
  const dir = serverDir('apache');
  chmodSync(dir, 0o755);
  const root = join(dir, 'www');
  mkdirSync(root);
  for (const [name, body] of Object.entries(files)) writeFileSync(join(root, name), body);
  const port = await freePort();
  const mods = '/usr/lib/apache2/modules';
  writeFileSync(
    join(dir, 'httpd.conf'),
    `ServerRoot ${dir}
LoadModule mpm_prefork_module ${mods}/mod_mpm_prefork.so
LoadModule authz_core_module ${mods}/mod_authz_core.so
LoadModule mime_module ${mods}/mod_mime.so
User www-data
Group www-data
ServerName 127.0.0.1
Listen 127.0.0.1:${port}
PidFile ${dir}/httpd.pid
ErrorLog ${dir}/error.log
TypesConfig /etc/mime.types
DocumentRoot ${root}
<Directory ${root}>
  Require all granted
</Directory>
`,
  );
  const child = spawn('/usr/sbin/apache2', ['-X', '-f', join(dir, 'httpd.conf')], { cwd: dir, stdio: 'ignore' });
  stopWith(t, child, dir);
  await waitListening(port, child, 'apache2');
  return { origin: `http://127.0.0.1:${port}`, dir: root };
}
