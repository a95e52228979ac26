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
    files: ['test/**'],
    rules: {
      // Tests loop on flags that a concurrent async task flips (`while (publishing)`).
      'no-unmodified-loop-condition': 'off'
    }
  }
]
