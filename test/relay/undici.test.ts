// The undici pieces loaded by their own paths (src/relay/undici.ts) must be the very objects
// the package exports: an undici upgrade that moves a file fails here, not in production.
import t from 'tap';
import * as index from 'undici';
import { buildConnector, errors, fullUndici, Pool } from '../../src/relay/undici.ts';

t.test('deep-loaded undici pieces are the index exports', async (t) => {
  t.equal(Pool, index.Pool);
  t.equal(errors, index.errors);
  t.equal(errors.ConnectTimeoutError, index.errors.ConnectTimeoutError, 'instanceof checks see the same classes');
  t.equal(buildConnector, index.buildConnector);
  t.equal(fullUndici().Agent, index.Agent);
});
