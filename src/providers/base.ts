// Keys every provider kind shares in YAML.
import { z } from 'zod';
import { canonicalPrefix, UriError } from '../uri.ts';
import type { Provider } from './types.ts';

const stringSet = () =>
  z
    .array(z.string().min(1))
    .min(1)
    .optional()
    .transform((v) => (v ? new Set(v) : undefined));

export const providerBase = z.strictObject({
  /** unique; shows in logs, metrics and audit events */
  name: z.string().regex(/^[a-zA-Z0-9_.-]{1,64}$/, 'letters, digits, _ . - only, at most 64'),
  /** URI prefix this provider owns, e.g. s3://bucket/images/ or https://data.corp/ */
  match: z.string().transform((v, ctx) => {
    try {
      return canonicalPrefix(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `not a valid URI prefix: ${err instanceof UriError ? err.message : String(err)}` });
      return z.NEVER;
    }
  }),
  /** only tokens whose `org` claim is listed may read through this provider */
  orgs: stringSet(),
  /** only tokens whose `project` claim is listed may read through this provider */
  projects: stringSet(),
});

/** What names a provider and says who may use it: the same five fields in every kind. */
export type ProviderIdentity<K extends string = string> = Pick<Provider, 'name' | 'match' | 'orgs' | 'projects'> & { readonly kind: K };

/** A provider's identity from its YAML block (`kind` as the block's literal). */
export function identityOf<K extends string>(cfg: ProviderIdentity<K>): ProviderIdentity<K> {
  return { name: cfg.name, kind: cfg.kind, match: cfg.match, orgs: cfg.orgs, projects: cfg.projects };
}
