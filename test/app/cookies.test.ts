// Set-Cookie hardening on its own: attributes the app sent are replaced, not duplicated.
import t from 'tap';
import { CookieHardener } from '../../src/app/cookies.ts';

const strict = new CookieHardener({ httpOnly: true, scriptReadable: ['csrftoken'], sameSite: 'Strict' }, '__Host-keyhole');

t.test('adds Secure, HttpOnly, SameSite; keeps the rest', async (t) => {
  t.equal(strict.harden('sid=1; Path=/; Max-Age=60; Domain=example.org'), 'sid=1; Path=/; Max-Age=60; Domain=example.org; Secure; HttpOnly; SameSite=Strict');
  t.equal(strict.harden('sid=1;secure;HTTPONLY;samesite=None'), 'sid=1; Secure; HttpOnly; SameSite=Strict', 'no duplicates, config wins');
  t.equal(strict.harden('csrftoken=x; Path=/'), 'csrftoken=x; Path=/; Secure; SameSite=Strict', 'script-readable cookies stay readable');
  t.equal(strict.harden('empty=; Path=/'), 'empty=; Path=/; Secure; HttpOnly; SameSite=Strict');
});

t.test('drops what must not pass', async (t) => {
  t.equal(strict.harden('__Host-keyhole=planted; Path=/; Secure'), undefined, "the app cannot set Keyhole's session cookie");
  t.equal(strict.harden('no-equals-sign'), undefined);
  t.equal(strict.harden('=value'), undefined);
  t.same(strict.hardenAll(['a=1', '__Host-keyhole=x', 'b=2']), ['a=1; Secure; HttpOnly; SameSite=Strict', 'b=2; Secure; HttpOnly; SameSite=Strict']);
  t.same(strict.hardenAll(undefined), []);
});

t.test('httpOnly: false leaves script access to the app', async (t) => {
  const open = new CookieHardener({ httpOnly: false, scriptReadable: [], sameSite: 'Lax' }, '__Host-keyhole');
  t.equal(open.harden('ui=dark'), 'ui=dark; Secure; SameSite=Lax');
});
