// Signs the bench's session tokens exactly as `keyhole token` does (the built Keyhole's
// signDevToken): N distinct subjects, each scoped to the bench's data prefix, one per line.
// Usage: node sign-tokens.mjs BUILD_DIR CONFIG COUNT SCOPE [SUB_PREFIX]
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const [build, configFile, count, scope, prefix = 'user'] = process.argv.slice(2);
const { loadConfigFile } = await import(pathToFileURL(join(build, 'config/load.js')).href);
const { signDevToken } = await import(pathToFileURL(join(build, 'auth/sign.js')).href);
const config = loadConfigFile(configFile);
const lines = [];
for (let i = 0; i < Number(count); i++) {
  lines.push(await signDevToken(config, { sub: `${prefix}${i}`, scope: [scope], ttlSeconds: 6 * 3600 }));
}
process.stdout.write(lines.join('\n') + '\n');
