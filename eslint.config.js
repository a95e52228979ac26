// ESLint with neostandard, the Fastify ecosystem's style (standard, for TypeScript too).
import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'node_modules/**', '.tap/**', 'bench/results/**']
  }),
  {
    rules: {
      // `void promise` marks a promise deliberately not awaited (a signal handler, a background loop).
      'no-void': ['error', { allowAsStatement: true }],
      // `const ErrorCode = {...}` and `type ErrorCode` of the same name is how an enum-like is typed;
      // TypeScript itself refuses real redeclarations.
      '@typescript-eslint/no-redeclare': 'off'
    }
  },
  {
    // The per-message and per-request code: V8 (Node 20) builds an object literal with a spread followed
    // by more fields on a slow path, which cost about 10 µs of every HTTP publish (BENCHMARKS.md).
    files: [
      'src/core/{connection,ws-connection,sse-connection,dispatcher,encoding,compression,frame,hub,protocol,subscription}.ts',
      'src/core/brokers/{memory,redis-codec}.ts',
      'plugins/rate-limit.ts'
    ],
    rules: {
      'no-restricted-syntax': ['error', {
        selector: 'ObjectExpression > SpreadElement',
        message: 'No object spread on the hot path: V8 builds it on a slow path (BENCHMARKS.md). Spell the fields out.'
      }]
    }
  },
  {
    files: ['test/**'],
    rules: {
      // Tests loop on flags that a concurrent async task flips (`while (publishing)`).
      'no-unmodified-loop-condition': 'off'
    }
  }
]
