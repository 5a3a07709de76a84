#!/usr/bin/env -S node --single-threaded-gc
// keyhole serve | check-config | certs | token | presign | tasks | audit — contracts for ops, tests and scripts.
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { ConfigError, formatProblem, loadConfigFile } from './config/load.ts';
import { loadSigningAuth } from './cli/config-part.ts';
import { fail, failConfig } from './cli/exit.ts';
import { configWarnings, formatWarning } from './config/warnings.ts';
import { defaultConfig, ensureDevMaterial } from './config/default.ts';
import { signDevToken } from './auth/sign.ts';
import { DEFAULT_HOSTS } from './tls/devca.ts';

const USAGE = `usage: keyhole <command> [options]

  serve [--config FILE]            run Keyhole (no --config: the embedded dev default)
  check-config FILE                list every problem in FILE with its path; exit 1 if any
  certs [--dir certs] [--host H]… [--force]
                                   make a dev CA, server and client certificates
  token [--config FILE] --sub S [--scope PREFIX]… [--uri URI] [--org O] [--project P]
        [--ttl SECONDS] [--kid KID]
                                   print a signed session token (HS keys only); of FILE's
                                   secrets only auth.keys' need to be set
  presign --config FILE [--at ISO-TIME] [--ttl SECONDS] URI
                                   print the presigned URL for URI (s3, gcs, azure), signed at --at
  tasks rewrite --config FILE [--to keyhole|storage] [--base URL] [--input F] [--output F]
                                   rewrite a Label Studio task export's storage URIs into
                                   Keyhole URLs, or back (keyhole tasks --help)
  audit verify FILE… [--key PUBLIC.pem]… [--partial] [--json]
                                   check an audit trail's chain and signed checkpoints;
                                   exit 1 when tampered (keyhole audit --help)
`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve': {
      const { values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' }, port: { type: 'string' }, 'admin-port': { type: 'string' }, 'cert-dir': { type: 'string' } } });
      const port = values.port ?? process.env.KEYHOLE_PORT;
      const adminPort = values['admin-port'] ?? process.env.KEYHOLE_ADMIN_PORT;
      // Loaded only for serve: token, check-config and certs start faster without it.
      const { serve } = await import('./cli/serve.ts');
      await serve({
        config: values.config,
        certDir: values['cert-dir'],
        port: port !== undefined ? Number(port) : undefined,
        adminPort: adminPort !== undefined ? Number(adminPort) : undefined,
      });
      return;
    }
    case 'check-config': {
      const { positionals, values } = parseArgs({ args: rest, allowPositionals: true, options: { config: { type: 'string', short: 'c' } } });
      const file = positionals[0] ?? values.config;
      if (!file) fail('check-config needs a FILE');
      try {
        const cfg = loadConfigFile(file);
        process.stdout.write(`${file}: OK (${cfg.providers.length} provider(s): ${cfg.providers.map((p) => `${p.name}/${p.kind}`).join(', ')})\n`);
        for (const w of configWarnings(cfg)) process.stderr.write(`${file}: ${formatWarning(w)}\n`);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        process.stdout.write(`${file}: ${err.problems.length} problem(s)\n${err.problems.map((p) => `${formatProblem(p)}\n`).join('')}`);
        process.exit(1);
      }
      return;
    }
    case 'certs': {
      const { values } = parseArgs({ args: rest, options: { dir: { type: 'string', default: 'certs' }, host: { type: 'string', multiple: true }, force: { type: 'boolean', default: false } } });
      const { ensureDevCerts } = await import('./tls/devca.ts');
      const dir = resolve(values.dir);
      const { files, created } = await ensureDevCerts(dir, { hosts: values.host ?? DEFAULT_HOSTS, force: values.force });
      await ensureDevMaterial(dir);
      process.stdout.write(`${created ? 'created' : 'kept existing'} dev certificates in ${files.dir}\n`);
      return;
    }
    case 'token': {
      const { values } = parseArgs({
        args: rest,
        options: {
          config: { type: 'string', short: 'c' },
          sub: { type: 'string' },
          scope: { type: 'string', multiple: true },
          uri: { type: 'string' },
          org: { type: 'string' },
          project: { type: 'string' },
          ttl: { type: 'string', default: '3600' },
          kid: { type: 'string' },
          'cert-dir': { type: 'string' },
        },
      });
      if (!values.sub) fail('token needs --sub');
      if (!values.scope && !values.uri) fail('token needs --scope PREFIX (repeatable) or --uri URI');
      const ttl = Number(values.ttl);
      if (!Number.isInteger(ttl) || ttl <= 0) fail('--ttl must be a positive number of seconds');
      let config;
      try {
        // Only what signing needs: a provider credential unset where this runs is no matter.
        config = values.config ? loadSigningAuth(values.config) : await defaultConfig({ certDir: values['cert-dir'] });
      } catch (err) {
        if (err instanceof ConfigError && values.config) failConfig(values.config, err);
        throw err;
      }
      const token = await signDevToken(config, { sub: values.sub, scope: values.scope, uri: values.uri, org: values.org, project: values.project, ttlSeconds: ttl, kid: values.kid });
      process.stdout.write(`${token}\n`);
      return;
    }
    case 'presign': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { config: { type: 'string', short: 'c' }, at: { type: 'string' }, ttl: { type: 'string' } } });
      if (!values.config) fail('presign needs --config FILE');
      if (positionals.length !== 1) fail('presign needs exactly one URI');
      const at = values.at !== undefined ? new Date(values.at) : undefined;
      if (at && Number.isNaN(at.getTime())) fail('--at must be an ISO 8601 time, e.g. 2026-01-01T00:00:00Z');
      const ttl = values.ttl !== undefined ? Number(values.ttl) : undefined;
      if (ttl !== undefined && (!Number.isInteger(ttl) || ttl <= 0)) fail('--ttl must be a positive number of seconds');
      const { presignUri } = await import('./cli/presign.ts');
      process.stdout.write(`${await presignUri(loadConfigFile(values.config), positionals[0]!, { at, ttlSeconds: ttl })}\n`);
      return;
    }
    case 'tasks': {
      const { tasksCommand } = await import('./cli/tasks.ts');
      await tasksCommand(rest);
      return;
    }
    case 'audit': {
      const { auditCommand } = await import('./cli/audit-verify.ts');
      await auditCommand(rest);
      return;
    }
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return;
    default:
      fail(`unknown command ${command}\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((err) => {
  if (err instanceof ConfigError) fail(`configuration has ${err.problems.length} problem(s):\n${err.problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`);
  fail(err instanceof Error ? err.message : String(err), 1);
});
