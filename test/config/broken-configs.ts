// A table of broken configurations, one mistake each (some with several), as an ops engineer
// makes them: what each must be told, by path and message. test/config/broken-configs.test.ts
// checks every row through the loader serve uses, through check-config (all files in one
// call) and, for some, through serve itself.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testCerts } from '../helpers/certs.ts';
import { ADMIN_TOKEN, baseYaml, filesProviderYaml, localProviderItem, TEST_SECRET } from '../helpers/keyhole.ts';

export interface BrokenConfig {
  name: string;
  yaml: string;
  /** every problem the file must produce, in order: [path, message pattern] */
  problems: [string, RegExp][];
  env?: Record<string, string>;
}

export const ENV = { KEYHOLE_TEST_SECRET: TEST_SECRET, KEYHOLE_TEST_ADMIN: ADMIN_TOKEN };

export function brokenConfigs(dir: string): BrokenConfig[] {
  const c = testCerts();
  const files = join(dir, 'files');
  const base = (extra = filesProviderYaml(files)) => baseYaml(extra, { log: '{ level: info }' });
  const swap = (from: string, to: string, extra?: string) => {
    const y = base(extra);
    if (!y.includes(from)) throw new Error(`row setup: ${from} not in the base config`);
    return y.replace(from, to);
  };
  const notPem = join(dir, 'not-a-cert.pem');
  writeFileSync(notPem, 'hello\n');
  const file = join(dir, 'plain-file');
  writeFileSync(file, 'x');
  const http = (more: string) => `providers:\n  - name: web\n    kind: http\n    match: https://data.example.org/\n${more}`;
  return [
    { name: 'an empty file', yaml: '', problems: [['server', /^missing: a section \(a mapping of keys\) is required here$/], ['auth', /missing: a section/], ['providers', /^missing: a list is required here$/]] },
    { name: 'YAML: bad indentation', yaml: 'server:\n  listen:\n   host: x\n  port: 1\n bad\n', problems: [['line 5, column 1', /YAML: All mapping items must start at the same column/], ['line 5, column 2', /YAML: Implicit map keys need to be followed by map values$/]] },
    { name: 'YAML: a tab for indentation', yaml: 'server:\n\tlisten: {}\n', problems: [['line 2, column 1', /YAML: .*[Tt]ab/]] },
    { name: 'YAML: a key twice', yaml: base().replace('auth:\n', 'auth:\n  issuer: again\n'), problems: [['line 9, column 3', /YAML: Map keys must be unique/]] },
    { name: 'an unquoted reference inside { }', yaml: swap('secret: ${env:KEYHOLE_TEST_SECRET}', 'secret: { value: ${env:KEYHOLE_TEST_SECRET} }'), problems: [['line 13', /a reference inside \{ \} or \[ \] must be quoted: write "\$\{env:KEYHOLE_TEST_SECRET\}"/]] },
    { name: 'a mistyped top-level key', yaml: base().replace('providers:', 'provider:'), problems: [['providers', /missing/], ['provider', /unknown key \(did you mean providers\?\)/]] },
    { name: 'a mistyped nested key', yaml: swap('  issuer: test-issuer', '  isuer: test-issuer'), problems: [['auth.issuer', /missing: a string is required here/], ['auth.isuer', /unknown key \(did you mean issuer\?\)/]] },
    { name: 'a key in the wrong case', yaml: swap('server:\n', 'server:\n  insecurePlainHTTP: false\n'), problems: [['server.insecurePlainHTTP', /unknown key \(did you mean insecurePlainHttp\?\)/]] },
    { name: 'a key no section has', yaml: swap('server:\n', 'server:\n  colour: blue\n'), problems: [['server.colour', /unknown key \(known here: listen, tls, http2, insecurePlainHttp/]] },
    { name: 'a port out of range', yaml: swap('listen: { host: 127.0.0.1, port: 0 }\n  tls', 'listen: { host: 127.0.0.1, port: 70000 }\n  tls'), problems: [['server.listen.port', /Too big: expected number to be <=65535/]] },
    { name: 'a port as text', yaml: swap('listen: { host: 127.0.0.1, port: 0 }\n  tls', 'listen: { host: 127.0.0.1, port: "8443" }\n  tls'), problems: [['server.listen.port', /expected number, received string/]] },
    { name: 'no TLS and no insecurePlainHttp', yaml: base().replace(/ {2}tls: \{[^\n]*\n/, ''), problems: [['server.tls', /server\.tls is required/]] },
    { name: 'a missing certificate file', yaml: swap(`cert: ${c.serverCert}`, 'cert: /nonexistent/server.pem'), problems: [['server.tls.cert', /cannot read \/nonexistent\/server\.pem: ENOENT/]] },
    { name: 'a certificate that is not PEM', yaml: swap(`cert: ${c.serverCert}`, `cert: ${notPem}`), problems: [['server.tls.cert', /not-a-cert\.pem is not a PEM certificate \(.*no start line\)/]] },
    { name: "a key that is not the certificate's", yaml: swap(`key: ${c.serverKey}`, `key: ${c.clientKey}`), problems: [['server.tls', /the key \(.*client-key\.pem\) does not belong to the certificate \(.*server\.pem\)/]] },
    { name: 'an upstream mTLS pair that does not match', yaml: base(http(`    baseUrl: https://files.internal/\n    tls: { ca: ${c.caCert}, cert: ${c.clientCert}, key: ${c.otherClientKey} }\n`)), problems: [['providers[0].tls', /does not belong to the certificate/]] },
    { name: 'an upstream CA that is not a certificate', yaml: base(http(`    baseUrl: https://files.internal/\n    tls: { ca: ${notPem} }\n`)), problems: [['providers[0].tls.ca', /not-a-cert\.pem is not a PEM CA certificate/]] },
    { name: 'a baseUrl without its scheme', yaml: base(http('    baseUrl: 127.0.0.1:18081\n')), problems: [['providers[0].baseUrl', /^must be an absolute http:\/\/ or https:\/\/ URL, scheme included \(e\.g\. https:\/\/files\.internal\/\)$/]] },
    { name: 'an http provider without its baseUrl', yaml: base(http('')), problems: [['providers[0].baseUrl', /^missing: a string is required here$/]] },
    { name: 'a baseUrl on a private address', yaml: base(http('    baseUrl: https://10.0.0.5/\n')), problems: [['providers[0].baseUrl', /allowPrivateNetworks/]] },
    { name: 'allowPrivateNetworks as a word', yaml: base(http('    baseUrl: https://files.internal/\n    allowPrivateNetworks: yes-please\n')), problems: [['providers[0].allowPrivateNetworks', /must be true, false, or a list of IP addresses or CIDR ranges/]] },
    { name: 'an unknown provider kind', yaml: base('providers:\n  - { name: x, kind: ftp, match: "ftp://x/" }\n'), problems: [['providers[0].kind', /Expected 'http' \| 'local' \| 's3' \| 'gcs' \| 'azure' \| 'redis'/]] },
    { name: 'a local root that does not exist', yaml: base(`providers:\n${localProviderItem('files', '/nonexistent/folder')}`), problems: [['providers[0].root', /folder \/nonexistent\/folder cannot be read \(ENOENT\)/]] },
    { name: 'a local root that is a file', yaml: base(`providers:\n${localProviderItem('files', file)}`), problems: [['providers[0].root', /is not a folder/]] },
    { name: 'two providers with one name', yaml: base(`${filesProviderYaml(files)}  - name: files\n    kind: local\n    match: local://other/\n    root: ${files}\n`), problems: [['providers[1].name', /duplicate of providers\[0\]\.name/]] },
    { name: 'two providers with one prefix', yaml: base(`${filesProviderYaml(files)}${localProviderItem('other', files).replace('local://other/', 'local://files/')}`), problems: [['providers[1].match', /same prefix as providers\[0\]/]] },
    {
      name: 'a GCS service-account key file that is not one',
      yaml: base(`providers:\n  - name: gcs\n    kind: gcs\n    match: gs://bucket/\n    buckets: [{ name: bucket }]\n    credentials: { serviceAccountKey: "\${file:${notPem}}" }\n`),
      problems: [['providers[0].credentials.serviceAccountKey', /^file:.*not-a-cert\.pem is not a JSON service-account key$/]],
    },
    { name: 'no provider', yaml: base('providers: []\n'), problems: [['providers', /at least one provider is required/]] },
    { name: 'an inline secret', yaml: swap('secret: ${env:KEYHOLE_TEST_SECRET}', 'secret: inline-secret-0123456789abcdef-0123456789'), problems: [['auth.keys[0].secret', /must be a reference \$\{env:NAME\} or \$\{file:\/path\}, never an inline secret/]] },
    { name: 'a secret whose variable is not set', yaml: swap('secret: ${env:KEYHOLE_TEST_SECRET}', 'secret: ${env:KEYHOLE_NOT_SET_ANYWHERE}'), problems: [['auth.keys[0].secret', /environment variable KEYHOLE_NOT_SET_ANYWHERE is not set/]] },
    { name: 'a secret file that does not exist', yaml: swap('secret: ${env:KEYHOLE_TEST_SECRET}', 'secret: ${file:/nonexistent/secret}'), problems: [['auth.keys[0].secret', /\/nonexistent\/secret/]] },
    { name: 'an HMAC secret too short', yaml: base(), env: { KEYHOLE_TEST_SECRET: 'short' }, problems: [['auth.keys[0].secret', /HMAC secret must be at least 32 bytes/]] },
    { name: 'a duration without its unit', yaml: swap('server:\n', 'server:\n  drainTimeout: 20 seconds\n'), problems: [['server.drainTimeout', /must be a number of milliseconds or like '10s', '500ms', '2m'/]] },
    { name: 'revocation in Redis without a redis section', yaml: base(`revocation: { store: redis }\n${filesProviderYaml(files)}`), problems: [['redis', /revocation\.store redis needs the top-level redis: section/]] },
    { name: 'a log file in a folder that does not exist', yaml: base().replace('log: { level: info }', 'log: { level: info, auditDestination: /nonexistent/folder/audit.log }'), problems: [['log.auditDestination', /folder \/nonexistent\/folder cannot be written \(ENOENT\)/]] },
    { name: 'a CORS origin with a path', yaml: base(`cors: { origins: ["https://label.example.org/app"] }\n${filesProviderYaml(files)}`), problems: [['cors.origins[0]', /must be an exact origin/]] },
    {
      name: 'five problems in four sections, all in one pass',
      yaml: swap(`key: ${c.serverKey}`, `key: ${c.clientKey}`)
        .replace('  issuer: test-issuer', '  isuer: test-issuer')
        .replace(`root: ${files}`, 'root: /nonexistent/folder')
        .replace('log: { level: info }', 'log: { level: loud }'),
      problems: [
        ['auth.issuer', /missing/],
        ['auth.isuer', /did you mean issuer\?/],
        ['log.level', /expected one of "fatal"\|"error"\|"warn"\|"info"/],
        ['server.tls', /does not belong to the certificate/],
        ['providers[0].root', /cannot be read \(ENOENT\)/],
      ],
    },
  ];
}
