// Two ways a red-team run kept a logged-out session readable, against the Label-Studio-like
// app (signed-cookie sessions, Python's cookie parser) under Debian's gunicorn:
// - the logged-out cookie re-sent as a quoted string with a backslash or octal escape: the app
//   unquotes it to the same session, Keyhole hashed the bytes as sent and missed the mark;
// - a logout carrying an already-marked value beside the live one marked nothing.
import t from 'tap';
import { request } from 'undici';
import { baseYaml, dataUrl, startKeyhole } from '../helpers/keyhole.ts';
import { startLabelingApp } from '../e2e/support/labeling-app.ts';

t.test('a logged-out session cookie stays refused whatever its spelling, and every live value in a logout is marked', async (t) => {
  const app = await startLabelingApp(t, {
    mint: false,
    users: { 'ann@example.org': { id: 7, password: 'pw', projects: ['1'] } },
    projects: { '1': { prefix: 'local://samples/', images: ['hello.txt'] } },
    keyhole: { secret: 'x'.repeat(40), issuer: 'app', audience: 'keyhole', kid: 'k' },
  });
  const k = await startKeyhole(
    baseYaml(`providers:
  - { name: samples, kind: local, match: "local://samples/", root: ${process.cwd()}/samples }
app:
  upstream: ${app.origin}
`).replace(
      'auth:\n',
      `auth:
  introspect:
    url: ${app.origin}/api/current-user/whoami
    forward: [cookie]
    providers: [samples]
    logout: { paths: [/user/logout], sessionCookie: sessionid, remember: 14d }
`,
    ),
  );
  t.teardown(() => k.close());

  const page = await request(`${app.origin}/user/login`);
  const csrf = /csrftoken=([^;]+)/.exec(String(page.headers['set-cookie']))![1]!;
  await page.body.dump();
  const login = async (): Promise<string> => {
    const res = await request(`${app.origin}/user/login`, {
      method: 'POST',
      headers: { cookie: `csrftoken=${csrf}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: `csrfmiddlewaretoken=${csrf}&email=ann%40example.org&password=pw`,
    });
    await res.body.dump();
    return /sessionid=([^;]+)/.exec(String(res.headers['set-cookie']))![1]!;
  };
  const U = dataUrl('local://samples/hello.txt');
  const read = async (cookie: string) => {
    const r = await k.get(U, { cookie });
    return { status: r.status, error: r.status === 200 ? undefined : (JSON.parse(r.body.toString()) as { error: string }).error };
  };
  const whoami = async (cookie: string) => (await request(`${app.origin}/api/current-user/whoami`, { headers: { cookie } })).statusCode;

  const v1 = await login();
  t.equal((await read(`sessionid=${v1}`)).status, 200, 'a live session reads');
  t.equal((await k.get('/user/logout', { cookie: `sessionid=${v1}` })).status, 302, 'logout through the front');
  t.same(await read(`sessionid=${v1}`), { status: 401, error: 'session_logged_out' }, 'the plain replay is refused');
  const escaped = `"${v1[0]}\\${v1.slice(1)}"`;
  const octal = `"${v1.slice(0, -1)}\\${v1.charCodeAt(v1.length - 1).toString(8).padStart(3, '0')}"`;
  for (const [what, value] of [
    ['a backslash escape', escaped],
    ['an octal escape', octal],
  ] as const) {
    t.equal(await whoami(`sessionid=${value}`), 200, `${what}: the app reads it as the same live session`);
    t.same(await read(`sessionid=${value}`), { status: 401, error: 'introspect_denied' }, `${what}: Keyhole refuses it`);
  }

  await new Promise((r) => setTimeout(r, 1100)); // a new second: a new signed value
  const v2 = await login();
  t.not(v2, v1);
  t.equal((await read(`sessionid=${v2}`)).status, 200, 'the new session reads');
  t.equal((await k.get('/user/logout', { cookie: `sessionid=${v1}; sessionid=${v2}` })).status, 302, 'a logout carrying the marked value beside the live one');
  t.same(await read(`sessionid=${v2}`), { status: 401, error: 'session_logged_out' }, 'the live one is marked too');
});
