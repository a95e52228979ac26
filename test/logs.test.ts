// Logs an operator can use: one line when a websocket opens and one when it closes, tied to
// its connectionId, user, client address (request.ip, so TRUST_PROXY applies) and close code and
// reason; errors about a connection carry its connectionId; HTTP lines keep Fastify's reqId; one
// start-up line; and no token or API key in any line, whatever the host's logger serializes.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { spawn } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { mint, SECRET } from './auth-tokens.js'
import { freePort } from './fixtures/spawn.js'
import { connect, eventually, getJson, postJson, type Client } from './helpers.js'
import { realtime, type RealtimeOptions } from '../src/index.js'

const API_KEY = 'api-key-that-must-never-be-logged'

type Line = Record<string, any>

/** A pino destination that keeps every line, raw and parsed. */
class LogCapture extends Writable {
  text = ''
  readonly lines: Line[] = []

  override _write (chunk: Buffer, _encoding: string, callback: () => void): void {
    const text = String(chunk)
    this.text += text
    for (const line of text.split('\n')) if (line.trim() !== '') this.lines.push(JSON.parse(line))
    callback()
  }

  find (match: (line: Line) => boolean): Line[] {
    return this.lines.filter(match)
  }
}

/** A host app logging at info to a capture, with Fastify's default serializers, and the plugin under /rt. */
async function hostApp (t: Test, options: RealtimeOptions = {}, fastifyOptions: FastifyServerOptions = {}): Promise<{ app: FastifyInstance, log: LogCapture, url: string, wsUrl: string }> {
  const log = new LogCapture()
  const app = Fastify({ logger: { level: 'info', stream: log }, ...fastifyOptions })
  await app.register(realtime, { prefix: '/rt', nodeId: 'logs-node', ...options })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP')
  const url = `http://127.0.0.1:${address.port}`
  return { app, log, url, wsUrl: `${url.replace('http', 'ws')}/rt/ws` }
}

async function closedLine (log: LogCapture, connectionId: string): Promise<Line> {
  let line: Line | undefined
  await eventually(`the close line of ${connectionId}`, () => {
    line = log.find(l => l.msg === 'websocket closed' && l.connectionId === connectionId)[0]
    return line !== undefined
  })
  return line as Line
}

t.test('a websocket logs opening and closing with connectionId, user, client address, code and reason', async t => {
  const { log, url, wsUrl } = await hostApp(t, { jwtSecret: SECRET, apiKey: API_KEY }, { trustProxy: true })
  const token = mint({ sub: 'alice' })
  const client = await connect(t, `${wsUrl}?token=${token}`, { headers: { 'x-forwarded-for': '203.0.113.7' } })
  const connectionId = client.welcome.connectionId as string

  const opened = log.find(line => line.msg === 'websocket opened')
  t.equal(opened.length, 1)
  t.match(opened[0], { level: 30, connectionId, user: 'alice', remoteAddress: '203.0.113.7', reqId: String })
  const upgrade = log.find(line => line.reqId === opened[0].reqId && line.msg === 'incoming request')
  t.equal(upgrade.length, 1, "the open line's reqId is the upgrade request's")
  t.equal(upgrade[0].req.remoteAddress, '203.0.113.7', 'the HTTP line has the forwarded address too')

  client.ws.close(4321, 'see you')
  t.match(await closedLine(log, connectionId), { level: 30, connectionId, user: 'alice', remoteAddress: '203.0.113.7', code: 4321, reason: 'see you', durationMs: Number })

  // Closed by the server: the code and reason it chose (here an admin kicks the user).
  const kicked = await connect(t, wsUrl, { headers: { authorization: `Bearer ${mint({ sub: 'bob' })}` } })
  t.equal((await postJson(`${url}/rt/api/disconnect`, { user: 'bob' }, { 'x-api-key': API_KEY })).status, 200)
  t.equal((await kicked.closed).code, 4003)
  t.match(await closedLine(log, kicked.welcome.connectionId), { user: 'bob', remoteAddress: '127.0.0.1', code: 4003, reason: 'disconnected by the server' })
})

t.test('an error about a connection carries its connectionId', async t => {
  const { log, wsUrl } = await hostApp(t)
  const client = await connect(t, wsUrl)
  const connectionId = client.welcome.connectionId as string
  // Not UTF-8 in a text frame: ws refuses it with 1007 and reports the error.
  client.ws.send(Buffer.from([0xc3, 0x28]), { binary: false })
  t.equal((await client.closed).code, 1007)
  const closed = await closedLine(log, connectionId)
  const errors = log.find(line => line.msg === 'websocket error')
  t.equal(errors.length, 1)
  t.match(errors[0], { connectionId, user: null, err: { code: 'WS_ERR_INVALID_UTF8' } })
  t.match(closed, { code: 1007, reason: /UTF-8/ })
})

t.test('nothing is logged per message: fan-out and publishes add no lines', async t => {
  const { log, wsUrl } = await hostApp(t)
  const clients: Client[] = []
  for (let i = 0; i < 3; i++) clients.push(await connect(t, wsUrl))
  for (const client of clients) await client.request({ type: 'subscribe', topic: 'chat' })
  const before = log.lines.length
  for (let i = 0; i < 50; i++) await clients[0].request({ type: 'publish', topic: 'chat', data: i })
  for (const client of clients) await client.next(frame => frame.type === 'message' && frame.data === 49)
  t.equal(log.lines.length, before, '150 deliveries and 50 publishes, no log line')
})

t.test('no token or API key in any log line, with the host logger\'s default serializers', async t => {
  const { log, url, wsUrl } = await hostApp(t, { jwtSecret: SECRET, apiKey: API_KEY })
  const queryToken = mint({ sub: 'alice', jti: 'query-token' })
  const headerToken = mint({ sub: 'carol', jti: 'header-token' })
  const badToken = `${mint({ sub: 'mallory' })}x`

  const viaQuery = await connect(t, `${wsUrl}?token=${queryToken}&refusal=close`)
  const viaHeader = await connect(t, wsUrl, { headers: { authorization: `Bearer ${headerToken}` } })
  await viaHeader.request({ type: 'refresh', token: headerToken })
  t.equal((await postJson(`${url}/rt/api/publish?token=${queryToken}`, { topic: 'user.alice.inbox', data: 1 })).status, 200)
  t.equal((await postJson(`${url}/rt/api/publish`, { topic: 'user.carol.inbox', data: 2 }, { authorization: `Bearer ${headerToken}` })).status, 200)
  t.equal((await postJson(`${url}/rt/api/publish`, { topic: 'any', data: 3 }, { 'x-api-key': API_KEY })).status, 200)
  t.equal((await getJson(`${url}/rt/api/topics/any/history?token=${badToken}`)).status, 401)
  t.equal((await postJson(`${url}/rt/api/revoke`, { jti: 'query-token' }, { 'x-api-key': API_KEY })).status, 200)
  t.equal((await viaQuery.closed).code, 4003, 'the revoked token closes its connection')
  viaHeader.close()
  await closedLine(log, viaHeader.welcome.connectionId)

  const secrets = { 'the ?token= token': queryToken, 'the Authorization token': headerToken, 'the refused token': badToken, 'the API key': API_KEY }
  for (const [name, secret] of Object.entries(secrets)) t.notOk(log.text.includes(secret), `${name} is not in the log`)
  // Fastify's own HTTP lines (incoming request, request completed) keep their reqId.
  const http = log.find(line => line.msg === 'incoming request' || line.msg === 'request completed')
  t.ok(http.length >= 10, `${http.length} HTTP lines`)
  t.ok(http.every(line => typeof line.reqId === 'string'), 'every HTTP line has a reqId')
  t.ok(log.find(line => line.msg === 'incoming request').every(line => !String(line.req.url).includes('?')), 'request URLs without their query string')
})

t.test('one start-up line: broker, auth mode, prefix and limits', async t => {
  const { log } = await hostApp(t, { jwtSecret: SECRET, apiKey: API_KEY, maxConnections: 1234 })
  const lines = log.find(line => line.broker !== undefined && line.limits !== undefined)
  t.equal(lines.length, 1)
  t.match(lines[0], {
    level: 30,
    msg: 'realtime node logs-node: memory broker, auth jwt HS256, prefix /rt',
    node: 'logs-node',
    broker: 'memory',
    auth: 'jwt HS256',
    apiKey: true,
    prefix: '/rt',
    metrics: { auth: false, routes: 'realtime' },
    limits: { maxConnections: 1234, maxConnectionsPerUser: 100, maxSubscriptions: 128, maxPayload: 65536, messageRate: 100, rateLimitMax: 1000 }
  })

  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const es256 = await hostApp(t, { jwtPublicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() })
  t.match(es256.log.find(line => line.limits !== undefined)[0], { broker: 'memory', auth: 'jwt ES256', apiKey: false })

  const verify = await hostApp(t, { verify: () => ({ user: 'x', admin: false, subscribe: [], publish: [], expiresAt: null }) })
  t.match(verify.log.find(line => line.limits !== undefined)[0], { auth: 'host verify' })

  const open = await hostApp(t, { prefix: undefined, metrics: false })
  t.match(open.log.find(line => line.limits !== undefined)[0], { auth: 'open', prefix: '/', metrics: false })

  const redis = await hostApp(t, { redisUrl: 'redis://:hunter2secret@127.0.0.1:6379', redisPrefix: `logs-test-${process.pid}:` })
  const redisLine = redis.log.find(line => line.limits !== undefined)[0]
  t.match(redisLine, { broker: 'redis', redis: 'redis://:***@127.0.0.1:6379', redisPrefix: `logs-test-${process.pid}:` })
  t.notOk(redis.log.text.includes('hunter2secret'), 'no Redis password in the log')
})

t.test('the standalone server (src/server.ts): start-up line, connection lines, no credentials', async t => {
  const port = await freePort()
  const entry = fileURLToPath(new URL('../src/server.ts', import.meta.url))
  const tsx = fileURLToPath(import.meta.resolve('tsx'))
  const child = spawn(process.execPath, ['--import', tsx, entry], {
    // An empty working directory: the server reads ./.env from it.
    cwd: mkdtempSync(join(tmpdir(), 'rt-logs-')),
    env: { PATH: process.env.PATH ?? '', PORT: String(port), JWT_SECRET: SECRET, API_KEY, TRUST_PROXY: '127.0.0.1', LOG_LEVEL: 'info', NODE_ID: 'standalone-1' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let output = ''
  child.stdout.on('data', chunk => { output += String(chunk) })
  child.stderr.on('data', chunk => { output += String(chunk) })
  const exited = new Promise(resolve => child.once('exit', resolve))
  await eventually('the server listens', () => output.includes('Server listening'), 20000)

  const url = `http://127.0.0.1:${port}`
  const token = mint({ sub: 'dave' })
  const client = await connect(t, `ws://127.0.0.1:${port}/ws?token=${token}`, { headers: { 'x-forwarded-for': '198.51.100.9' } })
  const other = await connect(t, `ws://127.0.0.1:${port}/ws`, { headers: { authorization: `Bearer ${token}` } })
  t.equal((await postJson(`${url}/api/publish`, { topic: 'x', data: 1 }, { 'x-api-key': API_KEY })).status, 200)
  client.close()
  await client.closed
  await eventually('the close line', () => output.includes('"msg":"websocket closed"'))
  child.kill('SIGTERM')
  t.equal((await other.closed).code, 1001, 'SIGTERM drains with 1001')
  t.equal(await exited, 0)

  const lines: Line[] = output.split('\n').filter(line => line.startsWith('{')).map(line => JSON.parse(line))
  t.match(lines.find(line => line.limits !== undefined), { node: 'standalone-1', broker: 'memory', auth: 'jwt HS256', apiKey: true, prefix: '/', metrics: { auth: false } })
  t.match(lines.find(line => line.msg === 'websocket opened' && line.connectionId === client.welcome.connectionId), { user: 'dave', remoteAddress: '198.51.100.9', reqId: String })
  t.match(lines.find(line => line.msg === 'websocket closed' && line.connectionId === client.welcome.connectionId), { user: 'dave', remoteAddress: '198.51.100.9', code: 1005 })
  t.match(lines.find(line => line.msg === 'websocket closed' && line.connectionId === other.welcome.connectionId), { code: 1001, reason: 'server shutting down' })
  t.notOk(output.includes(token), 'no token in the output')
  t.notOk(output.includes(API_KEY), 'no API key in the output')
})
