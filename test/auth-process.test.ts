// The built server as a process (`node dist/src/server.js`, built by `npm test`): production refuses
// to run open, and no credential ever reaches the log, even at LOG_LEVEL=trace.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { bearer, mint, SECRET } from './auth-tokens.js'
import { SERVER_CWD, SERVER_ENTRY as SERVER } from './fixtures/spawn.js'
import { connect, postJson, refusedUpgrade } from './helpers.js'

interface Spawned {
  child: ChildProcess
  output: () => string
  exited: Promise<number | null>
}

function start (t: Test, env: Record<string, string>): Spawned {
  if (!existsSync(SERVER)) throw new Error(`${SERVER} is missing: run npm run build`)
  const child = spawn(process.execPath, [SERVER], {
    cwd: SERVER_CWD,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout?.on('data', chunk => { output += String(chunk) })
  child.stderr?.on('data', chunk => { output += String(chunk) })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return { child, output: () => output, exited }
}

/** Waits for the "listening" log line and returns the base URL. */
async function listening (server: Spawned, timeoutMs = 10000): Promise<string> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(server.output())
    if (match !== null) return match[1]
    if (server.child.exitCode !== null) throw new Error(`server exited: ${server.output()}`)
    if (Date.now() > deadline) throw new Error(`server did not listen within ${timeoutMs} ms: ${server.output()}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

async function exitWithin (server: Spawned, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`no exit within ${ms} ms: ${server.output()}`)), ms) })
  try {
    return await Promise.race([server.exited, timeout])
  } finally {
    clearTimeout(timer)
  }
}

t.test('NODE_ENV=production without a JWT key refuses to start; with one it starts', async t => {
  const open = start(t, { NODE_ENV: 'production' })
  const code = await exitWithin(open, 10000)
  t.not(code, 0, 'exits with an error')
  t.match(open.output(), /refusing to start open with NODE_ENV=production/)
  t.notMatch(open.output(), /Server listening/)

  const secured = start(t, { NODE_ENV: 'production', JWT_SECRET: SECRET })
  t.match(await listening(secured), /^http:/)
  secured.child.kill('SIGTERM')
  t.equal(await exitWithin(secured, 10000), 0)
})

t.test('open mode says so loudly at start-up', async t => {
  const server = start(t, {})
  await listening(server)
  t.match(server.output(), /NO JWT KEY CONFIGURED: running OPEN/)
  server.child.kill('SIGTERM')
  await exitWithin(server, 10000)
})

t.test('tokens and the API key never appear in the log, even at trace level', async t => {
  const apiKey = 'api-key-that-must-not-be-logged'
  const server = start(t, { JWT_SECRET: SECRET, API_KEY: apiKey, LOG_LEVEL: 'trace' })
  const url = await listening(server)
  const wsUrl = `${url.replace('http', 'ws')}/ws`
  const tokens = {
    query: mint({ sub: 'alice', jti: 'query' }),
    header: mint({ sub: 'alice', jti: 'header' }),
    refresh: mint({ sub: 'alice', jti: 'refresh' }),
    httpHeader: mint({ sub: 'alice', jti: 'http-header' }),
    httpQuery: mint({ sub: 'alice', jti: 'http-query' }),
    invalid: mint({ sub: 'alice', jti: 'invalid' }, { key: 'a-different-secret-of-32-bytes-or-more' }),
    expired: mint({ sub: 'alice', jti: 'expired', exp: 1 })
  }

  const byQuery = await connect(t, `${wsUrl}?token=${tokens.query}`)
  await byQuery.request({ type: 'refresh', token: tokens.refresh })
  const byHeader = await connect(t, wsUrl, { headers: bearer(tokens.header) })
  t.equal((await refusedUpgrade(`${wsUrl}?token=${tokens.invalid}`)).status, 401)
  t.equal((await refusedUpgrade(wsUrl, { headers: bearer(tokens.expired) })).status, 401)
  t.equal((await postJson(`${url}/api/publish`, { topic: 'user.alice.x', data: 1 }, bearer(tokens.httpHeader))).status, 200)
  t.equal((await postJson(`${url}/api/publish?token=${tokens.httpQuery}`, { topic: 'user.alice.x', data: 1 })).status, 200)
  t.equal((await postJson(`${url}/api/publish`, { topic: 'user.alice.x', data: 1 }, bearer(tokens.invalid))).status, 401)
  t.equal((await postJson(`${url}/api/revoke`, { jti: 'refresh' }, { 'x-api-key': apiKey })).status, 200)
  t.equal((await postJson(`${url}/api/publish`, { topic: 'x', data: 1 }, { 'x-api-key': `${apiKey}-wrong` })).status, 401)
  t.equal((await byQuery.closed).code, 4003, 'the refreshed connection runs on the refresh token (its jti was revoked)')
  byHeader.ws.close()
  await once(byHeader.ws, 'close')
  const raw = new WebSocket(`${wsUrl}?token=${tokens.expired}`)
  raw.on('error', () => {})
  await once(raw, 'unexpected-response')

  server.child.kill('SIGTERM')
  t.equal(await exitWithin(server, 10000), 0)
  const log = server.output()
  // The log did record these requests, so the absence below means something.
  t.match(log, /"url":"\/ws"/)
  t.match(log, /"url":"\/api\/publish"/)
  t.match(log, /"statusCode":401/)
  for (const [name, token] of Object.entries(tokens)) {
    t.notOk(log.includes(token), `the ${name} token is not in the log`)
    t.notOk(log.includes(token.split('.')[2]), 'nor its signature')
  }
  t.notOk(log.includes(apiKey), 'the API key is not in the log')
  t.notOk(log.includes(SECRET), 'the JWT secret is not in the log')
})
