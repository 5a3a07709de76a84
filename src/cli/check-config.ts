// `keyhole check-config FILE…`: each file through the loader serve uses (one code path:
// YAML, schema, references, then everything serve checks on disk before it listens), every
// problem of every file in one pass, then the warnings. Returns how many files failed.
import { ConfigError, formatProblem, loadConfigFile } from '../config/load.ts';
import { configWarnings, formatWarning } from '../config/warnings.ts';

export function checkConfigFiles(files: readonly string[]): number {
  let bad = 0;
  for (const file of files) {
    try {
      const cfg = loadConfigFile(file);
      process.stdout.write(`${file}: OK (${cfg.providers.length} provider(s): ${cfg.providers.map((p) => `${p.name}/${p.kind}`).join(', ')})\n`);
      for (const w of configWarnings(cfg)) process.stderr.write(`${file}: ${formatWarning(w)}\n`);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      bad++;
      process.stdout.write(`${file}: ${err.problems.length} problem(s)\n${err.problems.map((p) => `  ${file}: ${formatProblem(p)}\n`).join('')}`);
    }
  }
  return bad;
}
