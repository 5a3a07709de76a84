// Signs the bench's session tokens exactly as `keyhole token` does (the built Keyhole's
// signDevToken): N distinct subjects, each scoped to the bench's data prefix, one per line.
// Usage: node sign-tokens.mjs BUILD_DIR CONFIG COUNT SCOPE [SUB_PREFIX]
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const [build, configFile, count, scope, prefix = 'user'] = process.argv.slice(2);
/** The first of the build's module paths that exists: the src/ layout moves between commits. */
const mod = (...paths) => {
  const found = paths.map((p) => join(build, p)).find((f) => existsSync(f));
  if (!found) throw new Error(`none of ${paths.join(', ')} in ${build}`);
  return import(pathToFileURL(found).href);
};
const { loadConfigFile } = await mod('config/load.js');
const { signDevToken } = await mod('auth/sign.js');
const config = loadConfigFile(configFile);
const lines = [];
for (let i = 0; i < Number(count); i++) {
  lines.push(await signDevToken(config, { sub: `${prefix}${i}`, scope: [scope], ttlSeconds: 6 * 3600 }));
}
process.stdout.write(lines.join('\n') + '\n');
