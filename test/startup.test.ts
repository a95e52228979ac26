// Starting the server process (`node dist/src/server.js`; run `npm run build` first): .env in the
// working directory under the real environment, one line and exit code 1 for every start-up failure,
// and Redis out of reach at start handled like an outage (the process serves, ready once Redis comes).
import { generateKeyPairSync } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { eventually, privateRedis } from './fixtures/cluster.js'
import { exitWithin, freePort, spawnServer, type ServerProcess } from './fixtures/spawn.js'
import { connect, getJson, postJson } from './helpers.js'

/** A fresh directory to start the server in, removed when `t` ends. */
function workDir (t: Test, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'rt-startup-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content)
  return dir
}

async function listening (server: ServerProcess): Promise<string> {
  return (await server.waitFor(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/))[1]
}

async function stop (t: Test, server: ServerProcess): Promise<void> {
  server.child.kill('SIGTERM')
  t.equal(await exitWithin(server, 10000), 0, 'SIGTERM: exit code 0')
}

t.test('.env in the working directory fills what the environment leaves unset; the environment wins', async t => {
  const port = await freePort()
  const dir = workDir(t, {
    '.env': [
      '# a deployment\'s settings',
      `PORT=${port}`,
      'NODE_ID=from-dotenv',
      'HEARTBEAT_INTERVAL=11111',
      'DEMO=false',
      ''
    ].join('\n')
  })
  // Set in the environment, even to an empty string: the file does not override it.
  const server = spawnServer(t, { HEARTBEAT_INTERVAL: '22222', DEMO: '' }, { cwd: dir })
  const url = await listening(server)
  t.equal(url, `http://127.0.0.1:${port}`, 'PORT from .env')
  const client = await connect(t, `${url.replace('http', 'ws')}/ws`)
  t.equal(client.welcome.node, 'from-dotenv', 'NODE_ID from .env')
  t.equal(client.welcome.heartbeat, 22222, 'HEARTBEAT_INTERVAL from the environment, not from .env')
  const demo = await fetch(`${url}/demo`)
  await demo.text()
  t.equal(demo.status, 200, 'DEMO set empty in the environment beats DEMO=false in .env (empty is the default: on)')
  client.ws.close()
  await stop(t, server)
})

t.test('without .env the server starts from the environment alone', async t => {
  const server = spawnServer(t, { PORT: '0', NODE_ID: 'no-dotenv' }, { cwd: workDir(t) })
  const url = await listening(server)
  const client = await connect(t, `${url.replace('http', 'ws')}/ws`)
  t.equal(client.welcome.node, 'no-dotenv')
  client.ws.close()
  await stop(t, server)
})

t.test('every start-up failure: one line naming the cause, exit code 1, no stack trace', async t => {
  // Something already listens on this port.
  const blocker = createServer()
  await new Promise<void>(resolve => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { blocker.close() })
  const busyPort = (blocker.address() as { port: number }).port
  const ed25519 = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const redisPort = (await privateRedis(t, { password: 'the-right-password' })).port
  const envDir = workDir(t)
  mkdirSync(join(envDir, '.env'))

  const cases: Array<{ name: string, env: Record<string, string>, cwd?: string, expect: RegExp }> = [
    { name: 'a bad value in the environment', env: { HISTORY_SIZE: '-1' }, expect: /^fastify-realtime: invalid configuration: HISTORY_SIZE must be between 0 and \d+, got -1$/ },
    { name: 'a bad value in .env', env: {}, cwd: workDir(t, { '.env': 'MAX_SUBSCRIPTIONS=lots\n' }), expect: /^fastify-realtime: invalid configuration: MAX_SUBSCRIPTIONS must be an integer, got "lots"$/ },
    { name: 'an unreadable .env', env: {}, cwd: envDir, expect: /^fastify-realtime: cannot read \.env in .*rt-startup-.*: not a file$/ },
    { name: 'JWT_PUBLIC_KEY that is not a key', env: { JWT_PUBLIC_KEY: 'not-a-pem-key' }, expect: /^fastify-realtime: invalid configuration: JWT_PUBLIC_KEY is not a PEM public key/ },
    { name: 'JWT_PUBLIC_KEY of an unsupported type', env: { JWT_PUBLIC_KEY: ed25519 }, expect: /^fastify-realtime: invalid configuration: JWT_PUBLIC_KEY must be an RSA key \(RS256\) or a P-256 EC key \(ES256\), got ed25519$/ },
    { name: 'open mode in production', env: { NODE_ENV: 'production' }, expect: /^fastify-realtime: cannot start: refusing to start open with NODE_ENV=production: set JWT_SECRET or JWT_PUBLIC_KEY \(or register @fastify\/jwt in the host app, or pass `verify`\)$/ },
    { name: 'the port in use', env: { PORT: String(busyPort) }, expect: new RegExp(`^fastify-realtime: cannot listen on 127\\.0\\.0\\.1:${busyPort}: the port is already in use \\(PORT\\)$`) },
    { name: 'HOST not on this machine', env: { HOST: '192.0.2.1', PORT: '0' }, expect: /^fastify-realtime: cannot listen on 192\.0\.2\.1:0: 192\.0\.2\.1 is not an address of this machine \(HOST\)$/ },
    {
      name: 'Redis refusing the password',
      env: { REDIS_URL: `redis://:a-wrong-password@127.0.0.1:${redisPort}`, REDIS_PREFIX: 'rt-startup-refused:' },
      expect: new RegExp(`^fastify-realtime: cannot start: Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${redisPort}/? \\(REDIS_URL\\) refused this node: WRONGPASS`)
    }
  ]
  await Promise.all(cases.map(async ({ name, env, cwd, expect }) => {
    const server = spawnServer(t, { PORT: '0', ...env }, { cwd: cwd ?? workDir(t) })
    t.equal(await exitWithin(server, 15000), 1, `${name}: exit code 1`)
    // Log lines (JSON, e.g. the open-mode warning before a failed listen) may precede the failure.
    const lines = server.output().split('\n').filter(line => line !== '' && !line.startsWith('{'))
    t.equal(lines.length, 1, `${name}: one line besides the log, got:\n${server.output()}`)
    t.match(lines[0], expect, `${name}: names the cause`)
    t.notMatch(server.output(), /^\s+at /m, `${name}: no stack trace`)
    t.notMatch(server.output(), /a-wrong-password/, `${name}: no password in the output`)
    t.notMatch(server.output(), /Server listening/, `${name}: never listened`)
  }))
})

t.test('Redis out of reach at start: the process serves, live 200, ready 503, then ready once Redis comes', async t => {
  const redis = await privateRedis(t)
  await redis.stop()
  const server = spawnServer(t, { PORT: '0', REDIS_URL: redis.url, REDIS_PREFIX: 'rt-startup-late:', NODE_ID: 'late' }, { cwd: workDir(t) })
  const started = Date.now()
  const url = await listening(server)
  t.ok(Date.now() - started < 8000, 'listens without waiting for Redis')
  t.match(server.output(), /the broker is unreachable at start.*ECONNREFUSED|ECONNREFUSED.*the broker is unreachable at start/, 'the log says why it is not ready')
  t.equal((await getJson(`${url}/health/live`)).status, 200, 'live')
  t.match(await getJson(`${url}/health/ready`), { status: 503, body: { status: 'broker unavailable' } }, 'not ready')
  t.match(await postJson(`${url}/api/publish`, { topic: 'late.feed', data: 'early' }), { status: 503, body: { code: 'unavailable' } }, 'publishes refused with 503')
  const client = await connect(t, `${url.replace('http', 'ws')}/ws`)
  t.match(await client.request({ type: 'subscribe', topic: 'late.feed' }), { type: 'error', code: 'unavailable' }, 'websockets connect; subscribing is unavailable')

  await redis.start()
  await eventually('ready once Redis answers', async () => (await getJson(`${url}/health/ready`)).status === 200, 10000, 100)
  t.match(server.output(), /broker reachable again/, 'the log says it came up')
  t.match(await client.request({ type: 'subscribe', topic: 'late.feed' }), { type: 'ack' }, 'subscribing works')
  t.match(await postJson(`${url}/api/publish`, { topic: 'late.feed', data: 'late' }), { status: 200, body: { offset: 1 } }, 'publishing works')
  t.match(await client.next(f => f.type === 'message' && f.data === 'late'), { offset: 1 }, 'and is delivered')
  t.equal(server.child.exitCode, null, 'never exited')
  client.ws.close()
  await stop(t, server)
})
