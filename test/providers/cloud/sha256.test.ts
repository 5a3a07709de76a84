// The SHA-256 / HMAC given to @smithy/signature-v4 must be exactly node:crypto's, memo or not
// (the s3 vector suites check it end to end; this checks the class alone).
import t from 'tap';
import { createHash, createHmac } from 'node:crypto';
import { Sha256 } from '../../../src/providers/cloud/sha256.ts';

const hex = async (h: Sha256) => Buffer.from(await h.digest()).toString('hex');

t.test('hash and HMAC agree with node:crypto', async (t) => {
  const data = ['', 'a', 'GET\n/x\n\nhost:b\n\nhost\nUNSIGNED-PAYLOAD', 'é漢😀'];
  for (const d of data) {
    const plain = new Sha256();
    plain.update(Buffer.from(d));
    t.equal(await hex(plain), createHash('sha256').update(d).digest('hex'), `sha256(${JSON.stringify(d)})`);
    for (const key of ['wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', Buffer.alloc(32, 7), new Uint8Array([1, 2, 3])]) {
      const want = createHmac('sha256', key).update(d).digest('hex');
      const h = new Sha256(key);
      h.update(new TextEncoder().encode(d));
      t.equal(await hex(h), want, `hmac(${typeof key === 'string' ? 'string key' : `${key.length}-byte key`}, ${JSON.stringify(d)})`);
      // asked again: the string-key memo must give the same answer
      const again = new Sha256(key);
      again.update(new TextEncoder().encode(d));
      t.equal(await hex(again), want, 'the same when asked again');
    }
  }
});

t.test('several updates, reset, and digests that are the caller’s own', async (t) => {
  const h = new Sha256('k');
  h.update(Buffer.from('ab'));
  h.update(Buffer.from('cd'));
  const first = await h.digest();
  t.equal(Buffer.from(first).toString('hex'), createHmac('sha256', 'k').update('abcd').digest('hex'), 'updates concatenate');
  first.fill(0);
  const h2 = new Sha256('k');
  h2.update(Buffer.from('abcd'));
  t.equal(await hex(h2), createHmac('sha256', 'k').update('abcd').digest('hex'), 'scribbling on a digest leaves the memo intact');
  h2.reset();
  h2.update(Buffer.from('x'));
  t.equal(await hex(h2), createHmac('sha256', 'k').update('x').digest('hex'), 'reset starts over');
  // many distinct keys: the memo stays bounded and answers stay right
  for (let i = 0; i < 200; i++) {
    const m = new Sha256(`secret-${i}`);
    m.update(Buffer.from('id'));
    if (i % 50 === 0) t.equal(await hex(m), createHmac('sha256', `secret-${i}`).update('id').digest('hex'), `key ${i}`);
    else await m.digest();
  }
});
