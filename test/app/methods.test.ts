// Path readings and the verb allowlist on their own.
import t from 'tap';
import { fold, MethodPolicy, normaliseTarget } from '../../src/app/methods.ts';

const target = (raw: string) => {
  const tg = normaliseTarget(raw);
  if (!tg) throw new Error(`${raw}: refused`);
  return tg;
};

t.test('normaliseTarget', async (t) => {
  t.same(normaliseTarget('/a/./b/../c?x=1&y=%2F'), { forwardPath: '/a/c?x=1&y=%2F', readings: ['/a/c'], overrides: [] }, 'a plain path has one reading');
  t.same(normaliseTarget('/API/Users/1'), { forwardPath: '/API/Users/1', readings: ['/API/Users/1'], overrides: [] }, 'case is folded by the policy, not here');
  t.same([...target('/api//users/%41').readings].sort(), ['/api//users/%41', '/api//users/A', '/api/users/%41', '/api/users/A'].sort(), 'raw and decoded, // kept and merged');
  t.same([...target('/API;jsessionid=1/Users;v=2/1/').readings].sort(), ['/API/Users/1/', '/API;jsessionid=1/Users;v=2/1/'].sort(), 'path parameters kept and stripped');
  t.ok(target('/api/%75sers/%3Bx/1').readings.includes('/api/users/1'), 'encoded letters and an encoded ; too');
  t.same(target('/x?_method=delete&_method=%20Put').overrides, ['DELETE', 'PUT']);
  t.same(target('/x?%5Fmethod=PATCH').overrides, ['PATCH']);
  t.equal(normaliseTarget('/api/..;/admin/'), undefined, "Tomcat's ..;/ is a dot segment");
  t.equal(normaliseTarget('/api/.;x=1/admin'), undefined, 'a dot segment with parameters');
  t.equal(normaliseTarget('/a/%2e%2e%2fb'), undefined, 'encoded traversal');
  t.equal(normaliseTarget('/a/%5c..%5cb'), undefined, 'backslashes');
  t.equal(normaliseTarget('/a/%00'), undefined, 'NUL');
  t.equal(normaliseTarget('/a/%zz'), undefined, 'broken percent-encoding');
  t.equal(normaliseTarget('//elsewhere.example/x'), undefined, 'a scheme-relative target is not a path');
});

t.test('fold: the loosest case-insensitive comparison', async (t) => {
  t.equal(fold('/API/Users/'), '/api/users/');
  t.equal(fold('/api/u\u017fers/'), '/api/users/', 'ſ (Java equalsIgnoreCase, .NET OrdinalIgnoreCase: S)');
  t.equal(fold('/api/\u212Aeys/'), '/api/keys/', 'the Kelvin sign');
  t.equal(fold('/adm\u0130n/'), '/admin/', 'İ (Java: i)');
  t.equal(fold('/api/\uff55sers/'), '/api/users/', 'fullwidth letters (NFKC)');
});

t.test('MethodPolicy: longest prefix wins, TRACE never', async (t) => {
  const p = new MethodPolicy({
    defaultMethods: ['GET', 'POST', 'TRACE'],
    methods: [
      { path: '/api/', allow: ['GET'] },
      { path: '/api/tasks', allow: ['GET', 'PATCH'] },
    ],
  });
  const allows = (method: string, raw: string) => p.allows(method, target(raw));
  t.ok(allows('GET', '/api/x'));
  t.notOk(allows('POST', '/api/x'));
  t.notOk(allows('POST', '/api'), '"/api/" covers /api too');
  t.ok(allows('PATCH', '/api/tasks/3'));
  t.ok(allows('PATCH', '/api/tasks'));
  t.notOk(allows('PATCH', '/api/tasksX'), 'a prefix without a slash stops at a segment boundary');
  t.ok(allows('POST', '/other'), 'defaults elsewhere');
  t.notOk(allows('TRACE', '/other'), 'TRACE is never allowed, even when listed');
  t.same(p.allowedFor(target('/other').readings), ['GET', 'POST'], 'nor offered in Allow');
  t.notOk(allows('get', '/other'), 'methods are case-sensitive: get is not GET');
  t.notOk(allows('POST', '/other?_method=PATCH'), 'an override must be allowed as well');
  t.ok(allows('GET', '/api/tasks/3?_method=PATCH'), 'and passes where both are');

  const mixed = new MethodPolicy({ defaultMethods: ['GET', 'POST', 'DELETE'], methods: [{ path: '/API/Users/', allow: ['GET'] }] });
  for (const raw of ['/API/Users/1', '/api/users/1', '/API/USERS/1', '/api;x=1/users/1', '/api/%55sers/1', '/Api/Users;jsessionid=abc/1', '/api/u%C5%BFers/1', '/api//users/1', '/api/%EF%BD%95sers/1']) {
    t.notOk(mixed.allows('DELETE', target(raw)), `${raw}: the rule for /API/Users/ applies`);
    t.ok(mixed.allows('GET', target(raw)), `${raw}: GET still passes`);
  }
});

t.test('MethodPolicy: every reading must allow the method, so no spelling reaches a laxer rule', async (t) => {
  const p = new MethodPolicy({
    defaultMethods: ['GET', 'POST', 'DELETE'],
    methods: [
      { path: '/admin/', allow: ['GET'] },
      { path: '/admin/ok/', allow: ['GET', 'POST'] },
    ],
  });
  t.ok(p.allows('POST', target('/admin/ok/x')));
  for (const raw of ['/admin/OK/x', '/admin/ok;v=1/x', '/admin//ok/x', '/admin/%6Fk/x', '/admin/o%6B;a/x']) {
    t.notOk(p.allows('POST', target(raw)), `${raw}: some router reads it as /admin/<name>/`);
    t.same(p.allowedFor(target(raw).readings), ['GET'], `${raw}: Allow is the intersection`);
  }
});
