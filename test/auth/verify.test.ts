// TokenVerifier with every key source Keyhole accepts (HS secret, PEM, JWK, JWKS URL),
// rotation by kid, per-key algorithm allowlists, iss/aud/exp/nbf with clock tolerance,
// and the verified-token cache. Keys go through loadKey exactly as the runtime loads them.
import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHmac, createPublicKey, createSecretKey } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compactVerify, type JWK } from 'jose';
import { authSchema } from '../../src/auth/schema.ts';
import { loadKey } from '../../src/auth/keys.ts';
import { TokenError, TokenVerifier } from '../../src/auth/verify.ts';
import { Secret } from '../../src/config/secret.ts';
import { b64u, sign, testKey } from './fixtures.ts';

const SECRET1 = 'first-secret-0123456789abcdef-0123456789';
const SECRET2 = 'second-secret-0123456789abcdef-012345678';
const hs1 = createSecretKey(Buffer.from(SECRET1));
const hs2 = createSecretKey(Buffer.from(SECRET2));
const nowS = () => Math.floor(Date.now() / 1000);
const scope = { scope: ['local://samples/'] };

async function verifier(keys: unknown[], extra: Record<string, unknown> = {}) {
  const cfg = authSchema.parse({ issuer: 'test-issuer', audience: 'keyhole', keys, ...extra });
  const loaded = await Promise.all(cfg.keys.map(loadKey));
  const v = new TokenVerifier(loaded, cfg);
  const counts = { hit: 0, miss: 0 };
  v.onCache = (hit) => void counts[hit ? 'hit' : 'miss']++;
  return { v, counts };
}

async function reason(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (err) {
    if (err instanceof TokenError) return err.reason;
    throw err;
  }
}

t.test('HS256 secret, RS256 PEM, ES256 JWK, EdDSA PEM and JWK', async (t) => {
  const rs = testKey('rs');
  const es = testKey('es');
  const ed = testKey('ed');
  const { v } = await verifier([
    { kid: 'hs', algorithms: ['HS256'], secret: new Secret(SECRET1, 'env:X') },
    { kid: 'rs', algorithms: ['RS256'], publicKey: rs.pemFile },
    { kid: 'es', algorithms: ['ES256'], jwk: es.jwk },
    { kid: 'ed', algorithms: ['EdDSA'], publicKey: ed.pemFile },
    { kid: 'ed-jwk', algorithms: ['EdDSA', 'Ed25519'], jwk: ed.jwk },
  ]);
  const claims = await v.verify(await sign(hs1, { alg: 'HS256', kid: 'hs' }, { ...scope, org: 'acme', jti: 'j1' }));
  t.match(claims, { sub: 'alice', org: 'acme', jti: 'j1', scope: ['local://samples/'] });
  t.equal((await v.verify(await sign(rs.privateKey, { alg: 'RS256', kid: 'rs' }, scope))).sub, 'alice', 'RS256 from PEM');
  t.equal((await v.verify(await sign(es.privateKey, { alg: 'ES256', kid: 'es' }, scope))).sub, 'alice', 'ES256 from JWK');
  t.equal((await v.verify(await sign(ed.privateKey, { alg: 'EdDSA', kid: 'ed' }, scope))).sub, 'alice', 'EdDSA from PEM');
  t.equal((await v.verify(await sign(ed.privateKey, { alg: 'EdDSA', kid: 'ed-jwk' }, scope))).sub, 'alice', 'EdDSA from JWK');
  // A key signed by one key but naming another's kid fails the signature check.
  t.equal(await reason(v.verify(await sign(es.privateKey, { alg: 'ES256', kid: 'rs' }, scope))), 'token_alg', 'ES256 under an RS256-only kid');
  t.equal(await reason(v.verify(await sign(testKey('rs2').privateKey, { alg: 'RS256', kid: 'rs' }, scope))), 'token_invalid', 'another RSA key under kid rs');
});

t.test('a jwk with private parts is refused at load', async (t) => {
  const cfg = authSchema.parse({ issuer: 'i', audience: 'a', keys: [{ algorithms: ['ES256'], jwk: { ...testKey('es').jwk, d: 'AAAA' } }] });
  await t.rejects(loadKey(cfg.keys[0]!), /public key/);
});

t.test('several keys at once: rotation by kid, and a token without kid tries each', async (t) => {
  const { v } = await verifier([
    { kid: 'old', algorithms: ['HS256'], secret: new Secret(SECRET1, 'env:A') },
    { kid: 'new', algorithms: ['HS256'], secret: new Secret(SECRET2, 'env:B') },
  ]);
  t.equal(await reason(v.verify(await sign(hs1, { alg: 'HS256', kid: 'old' }, scope))), 'accepted');
  t.equal(await reason(v.verify(await sign(hs2, { alg: 'HS256', kid: 'new' }, scope))), 'accepted');
  t.equal(await reason(v.verify(await sign(hs2, { alg: 'HS256' }, scope))), 'accepted', 'no kid: second key matches');
  t.equal(await reason(v.verify(await sign(hs1, { alg: 'HS256', kid: 'new' }, scope))), 'token_invalid', 'old key under the new kid');
  t.equal(await reason(v.verify(await sign(hs1, { alg: 'HS256', kid: 'gone' }, scope))), 'token_unknown_kid');
});

t.test('per-key algorithm allowlist', async (t) => {
  const rs = testKey('rs');
  const { v } = await verifier([
    { kid: 'rs', algorithms: ['RS256'], publicKey: rs.pemFile },
    { kid: 'hs', algorithms: ['HS256'], secret: new Secret(SECRET1, 'env:A') },
  ]);
  t.equal(await reason(v.verify(await sign(rs.privateKey, { alg: 'PS256', kid: 'rs' }, scope))), 'token_alg', 'PS256 with a key allowed RS256 only');
  t.equal(await reason(v.verify(await sign(rs.privateKey, { alg: 'RS512', kid: 'rs' }, scope))), 'token_alg');
  t.equal(await reason(v.verify(await sign(hs1, { alg: 'HS512', kid: 'hs' }, scope))), 'token_alg', 'HS512 with an HS256-only key');
  t.equal(await reason(v.verify(await sign(rs.privateKey, { alg: 'RS256', kid: 'rs' }, scope))), 'accepted');
});

t.test('iss, aud, exp, nbf with the configured clock tolerance', async (t) => {
  const keys = [{ kid: 'hs', algorithms: ['HS256'], secret: new Secret(SECRET1, 'env:A') }];
  const { v } = await verifier(keys, { clockTolerance: 30, issuer: ['test-issuer', 'other-issuer'], cache: { max: 0 } });
  const n = nowS();
  const at = (s: number) => s * 1000;
  const h = { alg: 'HS256', kid: 'hs' };
  const expSoon = await sign(hs1, h, { ...scope, iat: n - 100, exp: n });
  t.equal(await reason(v.verify(expSoon, at(n + 29))), 'accepted', 'exp 29s ago, tolerance 30s');
  t.equal(await reason(v.verify(expSoon, at(n + 31))), 'token_expired', 'exp 31s ago');
  const nbf = await sign(hs1, h, { ...scope, nbf: n + 20 });
  t.equal(await reason(v.verify(nbf, at(n))), 'accepted', 'nbf 20s ahead, tolerance 30s');
  t.equal(await reason(v.verify(nbf, at(n - 20))), 'token_not_yet_valid', 'nbf 40s ahead');
  t.equal(await reason(v.verify(await sign(hs1, h, scope, { iss: 'other-issuer' }))), 'accepted', 'second listed issuer');
  t.equal(await reason(v.verify(await sign(hs1, h, scope, { iss: 'x' }))), 'token_claims');
  t.equal(await reason(v.verify(await sign(hs1, h, scope, { aud: 'x' }))), 'token_claims');
  t.equal(await reason(v.verify(await sign(hs1, h, { ...scope, sub: undefined }))), 'token_claims', 'sub required');
  t.equal(await reason(v.verify(await sign(hs1, h, { sub: 'a' }))), 'token_claims', 'a token granting nothing');
  t.equal(await reason(v.verify(await sign(hs1, h, { scope: ['not a uri'] }))), 'token_claims', 'bad scope');
  t.equal(await reason(v.verify(await sign(hs1, h, scope, { ttl: 90_000 }))), 'token_lifetime', 'lifetime over maxTokenLifetime: its own reason, naming the setting');
  const critInput = `${b64u({ ...h, crit: ['exp'], exp: n })}.${b64u({ iss: 'test-issuer', aud: 'keyhole', sub: 'a', exp: n + 60, ...scope })}`;
  const crit = `${critInput}.${createHmac('sha256', SECRET1).update(critInput).digest('base64url')}`;
  t.equal(await reason(v.verify(crit)), 'token_malformed', 'crit header');
  t.equal(await reason(v.verify('x'.repeat(9000))), 'token_malformed', 'oversized');
});

t.test('verified-token cache: a hot token is not re-verified, never past exp', async (t) => {
  const { v, counts } = await verifier([{ kid: 'hs', algorithms: ['HS256'], secret: new Secret(SECRET1, 'env:A') }], { clockTolerance: 5 });
  const n = nowS();
  const token = await sign(hs1, { alg: 'HS256', kid: 'hs' }, { ...scope, iat: n, exp: n + 60 });
  await v.verify(token, n * 1000);
  await v.verify(token, n * 1000 + 1000);
  await v.verify(token, n * 1000 + 2000);
  t.same(counts, { hit: 2, miss: 1 }, 'one signature check for three requests');
  t.equal(await reason(v.verify(token, (n + 66) * 1000)), 'token_expired', 'the cached entry dies with the token');
  t.same(counts, { hit: 2, miss: 2 });
  // Flip a bit inside the signature: the last base64url character has 2 spare bits a decoder
  // ignores, so rewriting the tail could leave the signature bytes unchanged.
  const [bh, bp, bs] = token.split('.');
  const badSig = Buffer.from(bs!, 'base64url');
  badSig[20] = badSig[20]! ^ 1; // inside the last 32 characters, like a tail edit
  const bad = `${bh}.${bp}.${badSig.toString('base64url')}`;
  t.equal(await reason(v.verify(bad)), 'token_invalid');
  t.equal(await reason(v.verify(bad)), 'token_invalid', 'a refused token is never cached');
  // The cache is keyed by the signature's tail: a token that borrows a cached token's signature
  // under other claims must not find that entry.
  const [, , sig] = token.split('.');
  const forged = `${b64u({ alg: 'HS256', kid: 'hs' })}.${b64u({ iss: 'test-issuer', aud: 'keyhole', sub: 'mallory', iat: n, exp: n + 60, scope: ['local://'] })}.${sig}`;
  t.equal(forged.slice(-32), token.slice(-32), 'same cache key');
  t.equal(await reason(v.verify(token, n * 1000 + 2500)), 'accepted', 'the real token, cached again');
  t.same(counts, { hit: 2, miss: 5 });
  t.equal(await reason(v.verify(forged, n * 1000 + 3000)), 'token_invalid', 'a forgery reusing a cached signature is verified, and refused');
  t.equal(await reason(v.verify(token, n * 1000 + 4000)), 'accepted', 'the real token is still served');
  t.same(counts, { hit: 3, miss: 6 }, 'the forgery was a miss, the real token then a hit: its entry survived');
});

t.test('JWKS URL: cached, an unknown kid refetches only after the cooldown', async (t) => {
  const a = testKey('rs');
  const b = testKey('rs2');
  let keys: JWK[] = [{ ...a.jwk, kid: 'a', alg: 'RS256', use: 'sig' }];
  let fetches = 0;
  const server = createServer((req, res) => {
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  const { v } = await verifier([{ algorithms: ['RS256'], jwksUrl: url, cooldown: '1s', cacheMaxAge: '10m' }]);

  t.equal(await reason(v.verify(await sign(a.privateKey, { alg: 'RS256', kid: 'a' }, scope))), 'accepted');
  t.equal(fetches, 1);
  t.equal(await reason(v.verify(await sign(a.privateKey, { alg: 'RS256', kid: 'a' }, { ...scope, jti: 'other' }))), 'accepted');
  t.equal(fetches, 1, 'a second token with a known kid does not refetch');

  keys = [...keys, { ...b.jwk, kid: 'b', alg: 'RS256', use: 'sig' }];
  const rotated = await sign(b.privateKey, { alg: 'RS256', kid: 'b' }, scope);
  t.equal(await reason(v.verify(rotated)), 'token_unknown_kid', 'within the cooldown: no refetch');
  t.equal(fetches, 1);
  // The cooldown is wall-clock time inside jose: wait it out.
  await new Promise((r) => setTimeout(r, 1100));
  t.equal(await reason(v.verify(await sign(b.privateKey, { alg: 'RS256', kid: 'b' }, { ...scope, jti: 'b2' }))), 'accepted', 'rotated key fetched after the cooldown');
  t.equal(fetches, 2);
  t.equal(await reason(v.verify(await sign(a.privateKey, { alg: 'PS256', kid: 'a' }, scope))), 'token_alg', 'allowlist applies to JWKS keys');
});

// RFC 7520 (JOSE cookbook) vectors: signatures computed by someone else, checked through
// Keyhole's own key loading. Their payloads are prose, not claim sets, so the verifier
// gets past the signature and then refuses the token as malformed; a flipped signature
// byte is refused as token_invalid instead: the difference proves the signature check.
const COOKBOOK = join(process.cwd(), '..', 'shared', 'vectors', 'jose', 'rfc7520-cookbook');
const cookbook = (f: string) => JSON.parse(readFileSync(join(COOKBOOK, f), 'utf8'));
const publicOnly = (jwk: Record<string, string>) => {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
  return pub;
};
const flip = (compact: string) => {
  const parts = compact.split('.');
  const sig = Buffer.from(parts[2]!, 'base64url');
  sig[5] = sig[5]! ^ 1;
  return `${parts[0]}.${parts[1]}.${sig.toString('base64url')}`;
};

t.test('RFC 7520 4.1 RS256 through a jwk key, 4.3 ES512 through a PEM key', async (t) => {
  const rsa = cookbook('jws/4_1.rsa_v15_signature.json');
  const ec = cookbook('jws/4_3.ecdsa_signature.json');
  const dir = mkdtempSync(join(tmpdir(), 'keyhole-cookbook-'));
  const ecPem = join(dir, 'ec.pem');
  writeFileSync(ecPem, createPublicKey({ key: publicOnly(ec.input.key), format: 'jwk' }).export({ type: 'spki', format: 'pem' }));
  const cfg = authSchema.parse({
    issuer: 'i',
    audience: 'a',
    keys: [
      { kid: rsa.input.key.kid, algorithms: ['RS256'], jwk: publicOnly(rsa.input.key) },
      { kid: ec.input.key.kid + '-ec', algorithms: ['ES512'], publicKey: ecPem },
    ],
  });
  const [rsKey, ecKey] = await Promise.all(cfg.keys.map(loadKey));
  for (const [vector, key] of [[rsa, rsKey], [ec, ecKey]] as const) {
    if (key!.kind !== 'static') throw new Error('static key expected');
    const { payload } = await compactVerify(vector.output.compact, key!.key);
    t.equal(new TextDecoder().decode(payload), vector.input.payload, `${vector.title}: payload verifies with the loaded key`);
    await t.rejects(compactVerify(flip(vector.output.compact), key!.key), `${vector.title}: flipped signature refused`);
  }
  const v = new TokenVerifier([rsKey!], cfg);
  t.equal(await reason(v.verify(rsa.output.compact)), 'token_malformed', 'signature accepted, prose payload refused');
  t.equal(await reason(v.verify(flip(rsa.output.compact))), 'token_invalid', 'flipped signature refused');
  const vEc = new TokenVerifier([ecKey!], cfg);
  // The ES512 vector names kid bilbo…; our PEM key has another kid, so it is unknown.
  t.equal(await reason(vEc.verify(ec.output.compact)), 'token_unknown_kid');
});

t.test('RFC 7520 4.4 HS256: the cookbook secret verifies, another does not', async (t) => {
  const hmac = cookbook('jws/4_4.hmac-sha2_integrity_protection.json');
  const secret = Buffer.from(hmac.input.key.k, 'base64url');
  const { payload } = await compactVerify(hmac.output.compact, createSecretKey(secret));
  t.equal(new TextDecoder().decode(payload), hmac.input.payload);
  await t.rejects(compactVerify(hmac.output.compact, hs1));
});
