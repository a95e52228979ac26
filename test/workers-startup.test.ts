// WORKERS > 1 failing at start (src/server.ts, src/workers/primary.ts): whatever stops the start, the
// user reads its line once, not once per worker, and the primary exits 1 without restarting anyone.
// A bad variable is refused by the primary before it forks; what only a worker can find (a key that
// is not one, the port in use) is handed by the failing workers to the primary, which prints it once.
import { spawnSync } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { SERVER_CWD } from './fixtures/spawn.js'

const BIN = fileURLToPath(new URL('../bin/fastify-realtime.js', import.meta.url))

/** `npx fastify-realtime --workers 2` with only `env`; its exit code and everything it printed. */
function runWorkers (env: Record<string, string>): { status: number | null, stderr: string, stdout: string } {
  const run = spawnSync(process.execPath, [BIN, '--workers', '2'], {
    cwd: SERVER_CWD,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    encoding: 'utf8',
    timeout: 60_000
  })
  return { status: run.status, stderr: run.stderr, stdout: run.stdout }
}

const lines = (text: string, pattern: RegExp): string[] => text.split('\n').filter(line => pattern.test(line))

t.test('a bad variable: one line from the primary, exit 1, no worker started', async t => {
  const { status, stderr, stdout } = runWorkers({ PORT: '0', HISTORY_SIZE: 'lots' })
  t.equal(status, 1)
  t.equal(lines(stderr, /HISTORY_SIZE/).length, 1, 'one line names the variable')
  t.match(stderr, /^fastify-realtime: invalid configuration: HISTORY_SIZE /)
  t.equal(stderr.trim().split('\n').length, 1, 'and nothing else on stderr')
  t.notMatch(stdout, /"worker":/, 'no worker was forked')
})

t.test('a key only the workers check: its line once, exit 1, nothing restarted', async t => {
  const { status, stderr, stdout } = runWorkers({ PORT: '0', JWT_PUBLIC_KEY: 'not-a-pem-key' })
  t.equal(status, 1)
  t.equal(lines(stderr, /JWT_PUBLIC_KEY/).length, 1, `one line, not one per worker:\n${stderr}`)
  t.match(stderr, /^fastify-realtime: invalid configuration: JWT_PUBLIC_KEY is not a PEM public key/)
  t.equal(stderr.trim().split('\n').length, 1, 'and nothing else on stderr')
  t.notMatch(stdout, /exited unexpectedly|restarting/, 'no worker restarted')
})

t.test('the port in use: its line once, exit 1, nothing restarted', async t => {
  const taken = createServer()
  await new Promise<void>(resolve => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { taken.close() })
  const address = taken.address()
  if (address === null || typeof address === 'string') throw new Error('no TCP address')
  const { status, stderr, stdout } = runWorkers({ PORT: String(address.port) })
  t.equal(status, 1)
  t.same(lines(stderr, /cannot listen/), [`fastify-realtime: cannot listen on 127.0.0.1:${address.port}: the port is already in use (PORT)`], `one line:\n${stderr}`)
  t.equal(stderr.trim().split('\n').length, 1, 'and nothing else on stderr')
  t.notMatch(stdout, /exited unexpectedly|restarting|workers listening/)
})
