// What `keyhole token` and `keyhole tasks` read of a config file. Neither needs the
// providers' credentials (nor `tasks` the auth keys'): the file's structure is checked as
// check-config checks it, but only the part a command uses must have its secrets set.
import { z } from 'zod';
import { authSchema } from '../auth/schema.ts';
import { checkAuthKeys, ConfigError, formatPath, loadConfigFileStructure, type Problem } from '../config/load.ts';
import { configSchema } from '../config/schema.ts';
import { providerBase } from '../providers/base.ts';

const signingAuthSchema = authSchema.pick({ issuer: true, audience: true, keys: true, maxTokenLifetime: true });
export type SigningAuth = z.infer<typeof signingAuthSchema>;

/** A provider as URI routing sees it: a name, a kind, a canonical prefix. */
const providerPrefixSchema = providerBase.pick({ name: true, match: true }).extend({ kind: z.string() });
export type ProviderPrefix = z.infer<typeof providerPrefixSchema>;

const maxUriLengthSchema = configSchema.shape.server.shape.maxUriLength;

export interface RoutingConfig {
  providers: ProviderPrefix[];
  /** URIs longer than this are refused by the data route: never rewritten */
  maxUriLength: number;
}

/** auth.issuer, auth.audience, auth.maxTokenLifetime and auth.keys, their secrets read; nothing else needs to be set. */
export function loadSigningAuth(file: string): { auth: SigningAuth } {
  const tree = loadConfigFileStructure(file, ['auth.keys']);
  const auth = record(tree.auth);
  const parsed = signingAuthSchema.safeParse({ issuer: auth.issuer, audience: auth.audience, keys: auth.keys, maxTokenLifetime: auth.maxTokenLifetime });
  if (!parsed.success) throw new ConfigError(issues(parsed.error, ['auth']));
  const problems = checkAuthKeys(parsed.data.keys);
  if (problems.length > 0) throw new ConfigError(problems);
  return { auth: parsed.data };
}

/** The providers' names, kinds and prefixes; no secret of the file needs to be set. */
export function loadRouting(file: string): RoutingConfig {
  const tree = loadConfigFileStructure(file, []);
  const list: unknown[] = Array.isArray(tree.providers) ? tree.providers : [];
  const problems: Problem[] = [];
  const providers: ProviderPrefix[] = [];
  list.forEach((p, i) => {
    const r = record(p);
    const parsed = providerPrefixSchema.safeParse({ name: r.name, kind: r.kind, match: r.match });
    if (parsed.success) providers.push(parsed.data);
    else problems.push(...issues(parsed.error, ['providers', i]));
  });
  const length = maxUriLengthSchema.safeParse(record(tree.server).maxUriLength);
  if (!length.success) problems.push(...issues(length.error, ['server', 'maxUriLength']));
  if (problems.length > 0 || !length.success) throw new ConfigError(problems);
  return { providers, maxUriLength: length.data };
}

function record(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

// Only reached when the structure check let something through: worded like the loader.
function issues(err: z.ZodError, at: (string | number)[]): Problem[] {
  return err.issues.map((i) => ({ path: formatPath([...at, ...i.path]), message: i.message }));
}
