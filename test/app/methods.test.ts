// Path normalisation and the verb allowlist on their own.
import t from 'tap';
import { MethodPolicy, normaliseTarget } from '../../src/app/methods.js';

t.test('normaliseTarget', async (t) => {
  t.same(normaliseTarget('/a/./b/../c?x=1&y=%2F'), { forwardPath: '/a/c?x=1&y=%2F', matchPath: '/a/c' });
  t.same(normaliseTarget('/api//users/%41'), { forwardPath: '/api//users/%41', matchPath: '/api/users/A' });
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
});
