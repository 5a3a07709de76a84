// YAML for session tokens: who signs them, with which keys and algorithms.
import { z } from 'zod';
import { clientTls, duration, filePath, secret, text } from '../config/blocks.ts';
import { introspectSchema } from './introspect.ts';

const HMAC = ['HS256', 'HS384', 'HS512'] as const;
const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

const kid = z.string().min(1).max(256).optional();

/** Every key lists the algorithms it may verify: nothing is inferred from the token. */
export const keySchema = z.union([
  z.strictObject({ kid, algorithms: z.array(z.enum(HMAC)).min(1), secret: secret() }),
  z.strictObject({ kid, algorithms: z.array(z.enum(ASYMMETRIC)).min(1), publicKey: filePath() }),
  z.strictObject({ kid, algorithms: z.array(z.enum(ASYMMETRIC)).min(1), jwk: z.record(z.string(), z.unknown()) }),
  z.strictObject({
    algorithms: z.array(z.enum(ASYMMETRIC)).min(1),
    jwksUrl: text().pipe(z.url({ protocol: /^https?$/ })),
    /** how long fetched keys are trusted before a refetch */
    cacheMaxAge: duration(600_000),
    /** at most one refetch per cooldown when an unknown kid shows up */
    cooldown: duration(30_000),
    timeout: duration(5_000),
    tls: clientTls().optional(),
  }),
]);
export type KeyConfig = z.infer<typeof keySchema>;

const stringOrList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

export const authSchema = z.strictObject({
  issuer: stringOrList,
  audience: stringOrList,
  keys: z.array(keySchema).min(1, 'at least one key is required'),
  /** seconds of clock skew tolerated on exp and nbf */
  clockTolerance: z.number().int().min(0).max(300).default(30),
  /** tokens living longer than this (exp - iat) are refused; bounds subject revocation too */
  maxTokenLifetime: duration(86_400_000),
  cookie: z
    .strictObject({
      name: z.string().regex(/^__Host-[A-Za-z0-9_-]+$/, 'must start with __Host- (Secure, Path=/, no Domain)').default('__Host-keyhole'),
      sameSite: z.enum(['Strict', 'Lax', 'None']).default('Lax'),
    })
    .prefault({}),
  /** accept ?token= on data links (for <img>/<audio>/<video>); redacted from every log */
  queryToken: z.boolean().default(true),
  /** verified tokens kept so a hot token costs no signature check; never past exp */
  cache: z.strictObject({ max: z.number().int().min(0).max(1_000_000).default(10_000) }).prefault({}),
  /** no Keyhole token: ask the app who the user is (weaker: no per-URI scope; see docs/integrate.md) */
  introspect: introspectSchema.optional(),
});
export type AuthConfig = z.infer<typeof authSchema>;
