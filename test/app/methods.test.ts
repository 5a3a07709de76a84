// Path normalisation and the verb allowlist on their own.
import t from 'tap';
import { MethodPolicy, normaliseTarget } from '../../src/app/methods.js';

t.test('normaliseTarget', async (t) => {
  t.same(normaliseTarget('/a/./b/../c?x=1&y=%2F'), { forwardPath: '/a/c?x=1&y=%2F', matchPath: '/a/c' });
  t.same(normaliseTarget('/api//users/%41'), { forwardPath: '/api//users/%41', matchPath: '/api/users/a' });
  t.same(normaliseTarget('/API;jsessionid=1/Users;v=2/1/'), { forwardPath: '/API;jsessionid=1/Users;v=2/1/', matchPath: '/api/users/1/' }, 'path parameters stripped, case folded');
  t.same(normaliseTarget('/api/%75sers/%3Bx/1'), { forwardPath: '/api/%75sers/%3Bx/1', matchPath: '/api/users/1' }, 'encoded letters and an encoded ; too');
  t.equal(normaliseTarget('/api/..;/admin/'), undefined, "Tomcat's ..;/ is a dot segment");
  t.equal(normaliseTarget('/api/.;x=1/admin'), undefined, 'a dot segment with parameters');
  t.equal(normaliseTarget('/a/%2e%2e%2fb'), undefined, 'encoded traversal');
  t.equal(normaliseTarget('/a/%5c..%5cb'), undefined, 'backslashes');
  t.equal(normaliseTarget('/a/%00'), undefined, 'NUL');
  t.equal(normaliseTarget('/a/%zz'), undefined, 'broken percent-encoding');
  t.equal(normaliseTarget('//elsewhere.example/x'), undefined, 'a scheme-relative target is not a path');
});

t.test('MethodPolicy: longest prefix wins, TRACE never', async (t) => {
  const p = new MethodPolicy({
    defaultMethods: ['GET', 'POST', 'TRACE'],
    methods: [
      { path: '/api/', allow: ['GET'] },
      { path: '/api/tasks', allow: ['GET', 'PATCH'] },
    ],
  });
  t.ok(p.allows('GET', '/api/x'));
  t.notOk(p.allows('POST', '/api/x'));
  t.notOk(p.allows('POST', '/api'), '"/api/" covers /api too');
  t.ok(p.allows('PATCH', '/api/tasks/3'));
  t.ok(p.allows('PATCH', '/api/tasks'));
  t.notOk(p.allows('PATCH', '/api/tasksX'), 'a prefix without a slash stops at a segment boundary');
  t.ok(p.allows('POST', '/other'), 'defaults elsewhere');
  t.notOk(p.allows('TRACE', '/other'), 'TRACE is never allowed, even when listed');
  const mixed = new MethodPolicy({ defaultMethods: ['GET', 'POST', 'DELETE'], methods: [{ path: '/API/Users/', allow: ['GET'] }] });
  for (const raw of ['/api/users/1', '/API/USERS/1', '/api;x=1/users/1', '/api/%55sers/1', '/Api/Users;jsessionid=abc/1']) {
    t.notOk(mixed.allows('DELETE', normaliseTarget(raw)!.matchPath), `${raw}: the rule for /API/Users/ applies`);
  }
  t.notOk(p.allows('get', '/other'), 'methods are case-sensitive: get is not GET');
});
