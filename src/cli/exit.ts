// How every command ends on a refusal: one `keyhole: …` line on stderr and an exit code
// scripts can rely on (2: usage, input or configuration; 1: anything else).
import { ConfigError, formatProblem } from '../config/load.ts';

export function fail(message: string, code = 2): never {
  process.stderr.write(`keyhole: ${message}\n`);
  process.exit(code);
}

/** A configuration that cannot be used, named by its file: every problem on its own line. */
export function failConfig(file: string, err: ConfigError): never {
  fail(`${file}: configuration has ${err.problems.length} problem(s):\n${err.problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`);
}
