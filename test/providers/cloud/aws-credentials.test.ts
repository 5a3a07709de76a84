// Temporary AWS credentials are refreshed before they expire, once for many callers,
// and a source that yields nothing usable is an error (never a silent unsigned URL).
import t from 'tap';
import { AwsCredentialSource } from '../../../src/providers/cloud/aws-credentials.ts';

t.test('refreshes inside the margin with forceRefresh, shares one refresh between callers', async (t) => {
  let clock = 1_000_000;
  const calls: (boolean | undefined)[] = [];
  let n = 0;
  const source = new AwsCredentialSource(
    async (opts) => {
      calls.push(opts?.forceRefresh);
      n++;
      await new Promise((r) => setImmediate(r));
      return { accessKeyId: `AKID${n}`, secretAccessKey: `s${n}`, sessionToken: `tok${n}`, expiration: new Date(clock + 600_000) };
    },
    300_000,
    () => clock,
  );
  const first = await Promise.all([source.get(), source.get(), source.get()]);
  t.same(first.map((c) => c.accessKeyId), ['AKID1', 'AKID1', 'AKID1'], 'one fetch for concurrent callers');
  clock += 299_000; // 301 s left: still outside the 300 s margin
  t.equal((await source.get()).accessKeyId, 'AKID1');
  clock += 2_000; // 299 s left: refresh now
  const [a, b] = await Promise.all([source.get(), source.get()]);
  t.equal(a.accessKeyId, 'AKID2');
  t.equal(b.accessKeyId, 'AKID2');
  t.same(calls, [undefined, true], 'the refresh forces the chain past its own cache');
});

t.test('expired or empty credentials are refused', async (t) => {
  const expired = new AwsCredentialSource(async () => ({ accessKeyId: 'A', secretAccessKey: 'S', expiration: new Date(Date.now() - 1000) }), 0);
  await t.rejects(expired.get(), /expired credentials/);
  const empty = new AwsCredentialSource(async () => ({ accessKeyId: '', secretAccessKey: '' }), 0);
  await t.rejects(empty.get(), /no access key/);
  let attempts = 0;
  const failing = new AwsCredentialSource(async () => {
    attempts++;
    throw new Error('Could not load credentials from any providers');
  }, 0);
  await t.rejects(failing.get(), /Could not load credentials/);
  await t.rejects(failing.get(), /Could not load credentials/);
  t.equal(attempts, 2, 'a failure is not cached: the next request tries again');
});
