// The floor plan of src/, as rules: each part may import itself and the parts listed for it,
// nothing else, and no import circle anywhere. docs/design.md ("Where things live") draws
// the same picture. `npm run -s deps` checks it (CI runs it with lint).
//
// Read from the bottom up: a part lists only parts drawn below it, so every import points down.
const parts = {
  // leaves: reason codes, lazy values, the config's zod building blocks and secrets
  base: ['^src/(reasons|lazy)\\.ts$', '^src/config/(blocks|secret)\\.ts$'],
  uri: ['^src/uri\\.ts$'],
  http: ['^src/http/'],
  tls: ['^src/tls/'],
  redis: ['^src/redis/'],
  relay: ['^src/relay/'],
  observe: ['^src/observe/'],
  auth: ['^src/auth/'],
  limits: ['^src/limits/'],
  providers: ['^src/providers/'],
  app: ['^src/app/'],
  config: ['^src/config/(?!(blocks|secret)\\.ts$)'],
  runtime: ['^src/runtime\\.ts$'],
  server: ['^src/server/'],
  process: ['^src/process/'],
  cli: ['^src/cli/', '^src/cli\\.ts$'],
};

/** What each part may import besides itself. */
const mayImport = {
  base: [],
  uri: ['base'],
  http: ['base', 'uri'],
  tls: ['base'],
  redis: ['base', 'tls'],
  relay: ['base', 'uri', 'http', 'tls'],
  observe: ['base', 'uri', 'http', 'redis'],
  auth: ['base', 'uri', 'http', 'tls', 'redis', 'relay', 'observe'],
  providers: ['base', 'uri', 'http', 'tls', 'redis', 'relay', 'observe'],
  app: ['base', 'uri', 'http', 'relay', 'observe', 'auth'],
  limits: ['base', 'uri', 'http', 'tls', 'redis', 'relay', 'observe'],
  config: ['base', 'uri', 'tls', 'redis', 'observe', 'auth', 'providers', 'app', 'limits'],
  runtime: ['base', 'uri', 'http', 'tls', 'redis', 'relay', 'observe', 'auth', 'providers', 'app', 'limits', 'config'],
  server: ['base', 'uri', 'http', 'tls', 'redis', 'relay', 'observe', 'auth', 'providers', 'app', 'limits', 'config', 'runtime'],
  process: ['base', 'uri', 'http', 'tls', 'redis', 'observe', 'auth', 'limits', 'config', 'runtime', 'server'],
  cli: ['base', 'uri', 'http', 'tls', 'redis', 'observe', 'auth', 'providers', 'app', 'limits', 'config', 'runtime', 'server', 'process'],
};

const either = (paths) => paths.map((p) => `(${p})`).join('|');

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import circle: two modules that each need the other are one module, or one of them is in the wrong part.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'not-in-plan',
      severity: 'error',
      comment: 'Every module of src/ belongs to a part of the plan (add it to a part in .dependency-cruiser.cjs and docs/design.md).',
      from: { path: '^src/', pathNot: either(Object.values(parts).flat()) },
      to: {},
    },
    ...Object.entries(parts).map(([name, paths]) => ({
      name: `${name}-imports-down`,
      severity: 'error',
      comment: `${name} may import only ${mayImport[name].join(', ') || 'nothing else in src/'}: an import up the plan (or across it) puts a module in the wrong part.`,
      from: { path: either(paths) },
      to: { path: '^src/', pathNot: either([...paths, ...mayImport[name].flatMap((p) => parts[p])]) },
    })),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
