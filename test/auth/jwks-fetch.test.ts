// A JWKS URL is fetched through the undici 8 package, never the global fetch: on Node 24 the
// global fetch is Node's bundled undici 7, the line whose parser dies when an upstream closes
// right after its body (#5360). The JWKS here comes from Python's http.server (HTTP/1.0: it
// closes after every answer), with the global fetch made to fail: the token still verifies.
import t from 'tap';
import type { JWK } from 'jose';
import { authSchema } from '../../src/auth/schema.ts';
import { loadKey } from '../../src/auth/keys.ts';
import { TokenVerifier } from '../../src/auth/verify.ts';
import { startPythonHttpServer } from '../helpers/real-servers.ts';
import { sign, testKey } from './fixtures.ts';

t.test('a JWKS from an HTTP/1.0 server, fetched without the global fetch', async (t) => {
  const key = testKey('rs');
  const jwks = JSON.stringify({ keys: [{ ...key.jwk, kid: 'a', alg: 'RS256', use: 'sig' } satisfies JWK] });
  const py = await startPythonHttpServer(t, { 'jwks.json': jwks });
  const cfg = authSchema.parse({ issuer: 'test-issuer', audience: 'keyhole', keys: [{ algorithms: ['RS256'], jwksUrl: `${py.origin}/jwks.json` }] });
  const verifier = new TokenVerifier(await Promise.all(cfg.keys.map(loadKey)), cfg);

  const globalFetch = globalThis.fetch;
  let globalCalls = 0;
  globalThis.fetch = (() => {
    globalCalls++;
    return Promise.reject(new Error('the global fetch (Node bundled undici) was used'));
  }) as typeof fetch;
  t.teardown(() => void (globalThis.fetch = globalFetch));

  const claims = await verifier.verify(await sign(key.privateKey, { alg: 'RS256', kid: 'a' }, { scope: ['local://samples/'] }));
  t.equal(claims.sub, 'alice', 'verified with the key fetched from the JWKS URL');
  t.equal(globalCalls, 0, 'the global fetch was never called');
});
