#!/usr/bin/env -S node --single-threaded-gc --max-semi-space-size=8
// keyhole serve | check-config | certs | token | presign | tasks | audit — contracts for ops, tests and scripts.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { resolve } from 'node:path';
import { ConfigError, formatProblem } from './config/load.ts';
import { loadSigningAuth } from './cli/config-part.ts';
import { fail, failConfig } from './cli/exit.ts';
import { checkConfigFiles } from './cli/check-config.ts';
import { defaultConfig, ensureDevMaterial } from './config/default.ts';
import { signDevToken } from './auth/sign.ts';
import { buildInfo } from './observe/build-info.ts';
import { DEFAULT_HOSTS } from './tls/devca.ts';

const EXIT_CODES = `Exit status, every command: 0 done (warnings included); 2 it could not start: an
unknown command or option, a missing argument, or a configuration with problems
(check-config exits 2 when it finds any); 1 a failure once running: serve stopping on an
error, audit verify finding tampering, an output that could not be written.`;

/** One command: its usage text (printed by --help, exit 0) and what it does. */
interface Command {
  summary: string;
  usage: string;
  run(args: string[]): Promise<void>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs with --help/-h on every command and a usage error (exit 2) that points to it. */
function parse<O extends Options>(name: string, args: string[], options: O, positionals = false) {
  const all = { ...options, help: { type: 'boolean', short: 'h', default: false } } as const;
  let parsed;
  try {
    parsed = parseArgs({ args, options: all, allowPositionals: positionals, strict: true });
  } catch (err) {
    fail(`${name}: ${(err as Error).message} (keyhole ${name} --help)`);
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(COMMANDS[name]!.usage);
    process.exit(0);
  }
  return parsed;
}

function seconds(flag: string, raw: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n <= 0) fail(`${flag} must be a positive whole number of seconds, not ${raw}`);
  return n;
}

function port(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 0 || n > 65535) fail(`${flag} must be a port number 0-65535, not ${raw}`);
  return n;
}

const COMMANDS: Record<string, Command> = {
  serve: {
    summary: 'run Keyhole (no --config: the embedded dev default)',
    usage: `usage: keyhole serve [--config FILE] [--port N] [--admin-port N] [--cert-dir DIR]

Runs Keyhole. With --config FILE: that configuration, checked first as check-config checks it
(every problem listed, nothing listens on a bad one). SIGHUP reloads FILE and the
certificates; SIGTERM/SIGINT drain, then exit 0.
Without --config: the embedded development default (dev certificates, HS256 secret and
admin token made under --cert-dir, default certs/; samples/ as local://samples/; loopback).

  --config, -c FILE   the configuration (YAML)
  --port N            the embedded default's data port (default 8443, or KEYHOLE_PORT)
  --admin-port N      the embedded default's admin port (default 9091, or KEYHOLE_ADMIN_PORT)
                      With --config the ports are FILE's server.listen.port and
                      admin.listen.port: these two flags are refused there, not ignored.
  --cert-dir DIR      where the embedded default keeps its dev material (default certs/)

${EXIT_CODES}
`,
    async run(args) {
      const { values } = parse('serve', args, { config: { type: 'string', short: 'c' }, port: { type: 'string' }, 'admin-port': { type: 'string' }, 'cert-dir': { type: 'string' } });
      const flags = [values.port !== undefined && '--port', values['admin-port'] !== undefined && '--admin-port'].filter(Boolean);
      if (values.config !== undefined && flags.length > 0) {
        fail(`serve: ${flags.join(' and ')} ${flags.length > 1 ? 'set' : 'sets'} the embedded default's ports; with --config ${values.config} set server.listen.port and admin.listen.port in that file`);
      }
      // Loaded only for serve: token, check-config and certs start faster without it.
      const { serve } = await import('./cli/serve.ts');
      await serve({
        config: values.config,
        certDir: values['cert-dir'],
        port: port('--port', values.port ?? process.env.KEYHOLE_PORT),
        adminPort: port('--admin-port', values['admin-port'] ?? process.env.KEYHOLE_ADMIN_PORT),
      });
    },
  },
  'check-config': {
    summary: 'list every problem of each FILE with its path; exit 2 if any',
    usage: `usage: keyhole check-config FILE…

Runs on each FILE every check serve runs before it listens: YAML, the schema, every
\${env:…}/\${file:…} reference, files (certificates, keys and that they are pairs, CA
bundles, folders), URLs, each provider's own validation, audit destinations. Every problem
of every FILE is listed in one pass, with the file and the path in it; warnings (legal but
risky settings) go to stderr and do not fail the check. It connects to nothing (Redis,
upstreams and cloud identity endpoints are reached when serve starts).

${EXIT_CODES}
`,
    async run(args) {
      const { positionals, values } = parse('check-config', args, { config: { type: 'string', short: 'c', multiple: true } }, true);
      const files = [...(values.config ?? []), ...positionals];
      if (files.length === 0) fail('check-config needs a FILE (keyhole check-config --help)');
      const bad = checkConfigFiles(files);
      if (bad > 0) process.exit(2);
    },
  },
  certs: {
    summary: 'make a dev CA, server and client certificates',
    usage: `usage: keyhole certs [--dir DIR] [--host H]… [--force]

Makes a development CA, a server certificate for each --host (default: localhost,
127.0.0.1, ::1), a client certificate, an HS256 dev secret and an admin token in DIR
(default certs/). Existing files are kept unless --force. Never for production.

${EXIT_CODES}
`,
    async run(args) {
      const { values } = parse('certs', args, { dir: { type: 'string', default: 'certs' }, host: { type: 'string', multiple: true }, force: { type: 'boolean', default: false } });
      const { ensureDevCerts } = await import('./tls/devca.ts');
      const dir = resolve(values.dir);
      const { files, created } = await ensureDevCerts(dir, { hosts: values.host ?? DEFAULT_HOSTS, force: values.force });
      await ensureDevMaterial(dir);
      process.stdout.write(`${created ? 'created' : 'kept existing'} dev certificates in ${files.dir}\n`);
    },
  },
  token: {
    summary: 'print a signed session token (HS keys only)',
    usage: `usage: keyhole token [--config FILE] --sub S (--scope PREFIX… | --uri URI) [--org O]
                    [--project P] [--ttl SECONDS] [--kid KID] [--cert-dir DIR]

Prints a session token signed with an HS key of FILE's auth.keys (or the embedded
default's dev secret), as the labeling app would mint one. Of FILE's secrets only those of
auth.keys need to be set where this runs.

  --sub S             the user (claim sub)
  --scope PREFIX      a URI prefix the token may read (repeatable)
  --uri URI           or: the one URI it may read
  --org O, --project P   claims org and project
  --ttl SECONDS       lifetime (default 3600); at most FILE's auth.maxTokenLifetime
  --kid KID           sign with this key (default: the first HS key)

${EXIT_CODES}
`,
    async run(args) {
      const { values } = parse('token', args, {
        config: { type: 'string', short: 'c' },
        sub: { type: 'string' },
        scope: { type: 'string', multiple: true },
        uri: { type: 'string' },
        org: { type: 'string' },
        project: { type: 'string' },
        ttl: { type: 'string', default: '3600' },
        kid: { type: 'string' },
        'cert-dir': { type: 'string' },
      });
      if (!values.sub) fail('token needs --sub (keyhole token --help)');
      if (!values.scope && !values.uri) fail('token needs --scope PREFIX (repeatable) or --uri URI (keyhole token --help)');
      const ttl = seconds('--ttl', values.ttl);
      let config;
      try {
        // Only what signing needs: a provider credential unset where this runs is no matter.
        config = values.config ? loadSigningAuth(values.config) : await defaultConfig({ certDir: values['cert-dir'] });
      } catch (err) {
        if (err instanceof ConfigError && values.config) failConfig(values.config, err);
        throw err;
      }
      const max = Math.floor(config.auth.maxTokenLifetime / 1000);
      if (ttl > max) {
        fail(`--ttl ${ttl} is longer than auth.maxTokenLifetime (${max} s${values.config ? ` in ${values.config}` : ''}): Keyhole would refuse the token (token_lifetime); use --ttl ${max} or less, or raise auth.maxTokenLifetime`);
      }
      const token = await signDevToken(config, { sub: values.sub, scope: values.scope, uri: values.uri, org: values.org, project: values.project, ttlSeconds: ttl, kid: values.kid });
      process.stdout.write(`${token}\n`);
    },
  },
  presign: {
    summary: 'print the presigned URL for URI (s3, gcs, azure)',
    usage: `usage: keyhole presign --config FILE [--at ISO-TIME] [--ttl SECONDS] URI

Prints the presigned URL the provider owning URI would answer with (s3, gcs, azure), signed
at --at (default now) for --ttl seconds (default: the provider's presign.ttl).

${EXIT_CODES}
`,
    async run(args) {
      const { values, positionals } = parse('presign', args, { config: { type: 'string', short: 'c' }, at: { type: 'string' }, ttl: { type: 'string' } }, true);
      if (!values.config) fail('presign needs --config FILE (keyhole presign --help)');
      if (positionals.length !== 1) fail('presign needs exactly one URI (keyhole presign --help)');
      const at = values.at !== undefined ? new Date(values.at) : undefined;
      if (at && Number.isNaN(at.getTime())) fail('--at must be an ISO 8601 time, e.g. 2026-01-01T00:00:00Z');
      const ttl = values.ttl !== undefined ? seconds('--ttl', values.ttl) : undefined;
      const { loadConfigFile } = await import('./config/load.ts');
      let config;
      try {
        config = loadConfigFile(values.config);
      } catch (err) {
        if (err instanceof ConfigError) failConfig(values.config, err);
        throw err;
      }
      const { presignUri } = await import('./cli/presign.ts');
      process.stdout.write(`${await presignUri(config, positionals[0]!, { at, ttlSeconds: ttl })}\n`);
    },
  },
  tasks: {
    summary: "rewrite a Label Studio task export's storage URIs into Keyhole URLs, or back",
    get usage() {
      return 'usage: keyhole tasks rewrite --config FILE [--to keyhole|storage] [--base URL] [--input F] [--output F]\n';
    },
    async run(args) {
      const { tasksCommand } = await import('./cli/tasks.ts');
      await tasksCommand(args);
    },
  },
  audit: {
    summary: "check an audit trail's chain and signed checkpoints",
    get usage() {
      return 'usage: keyhole audit verify FILE… [--key PUBLIC.pem]… [--partial] [--json]\n';
    },
    async run(args) {
      const { auditCommand } = await import('./cli/audit-verify.ts');
      await auditCommand(args);
    },
  },
  version: {
    summary: 'print the version, the Node that runs it and the commit',
    usage: 'usage: keyhole version   (or keyhole --version)\n',
    async run(args) {
      parse('version', args, {});
      const info = buildInfo();
      process.stdout.write(`keyhole ${info.version} (node ${info.node}, commit ${info.commit})\n`);
    },
  },
};

const USAGE = `usage: keyhole <command> [options]        (keyhole <command> --help: all its options)

${Object.values(COMMANDS)
  .map((c) => `  ${c.usage.split('\n')[0]!.replace(/^usage: keyhole /, '')}\n        ${c.summary}`)
  .join('\n')}

  keyhole --version, -V       keyhole --help, -h

${EXIT_CODES}
`;

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  if (name === '--version' || name === '-V') return COMMANDS.version!.run([]);
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command === undefined) fail(`unknown command ${name}\n${USAGE}`);
  await command.run(rest);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError) fail(`configuration has ${err.problems.length} problem(s):\n${err.problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`);
  fail(err instanceof Error ? err.message : String(err), 1);
});
