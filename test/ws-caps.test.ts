// Connection caps under concurrency, on the in-memory and the Redis broker: many
// upgrades at once admit exactly MAX_CONNECTIONS_PER_USER (per user) and MAX_CONNECTIONS (per node),
// closing them gives the slots back, and an upgrade refused after its slot was reserved (bad Origin,
// the HTTP rate limit) or abandoned by its client gives it back too.
import { connect as tcpConnect } from 'node:net'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { kRealtimeNode } from '../plugins/node.js'
import type { Config } from '../src/config.js'
import { mint, SECRET } from './auth-tokens.js'
import { REDIS_URL, redisPrefix, spawnNode } from './fixtures/cluster.js'
import { eventually, startServer, type Server } from './helpers.js'

interface Attempt { ws: WebSocket, result: Promise<'open' | number> }

/** One upgrade: resolves with 'open' or the refusal's HTTP status. Terminated when `t` ends. */
function attempt (t: Test, url: string, options: WebSocket.ClientOptions = {}): Attempt {
  const ws = new WebSocket(url, options)
  ws.on('error', () => {})
  t.teardown(() => ws.terminate())
  const result = new Promise<'open' | number>((resolve, reject) => {
    ws.once('open', () => resolve('open'))
    ws.once('unexpected-response', (_request, response) => {
      response.resume()
      resolve(response.statusCode ?? 0)
    })
    ws.once('close', code => reject(new Error(`closed with ${code} before opening`)))
  })
  return { ws, result }
}

/** `count` concurrent upgrades; how many opened, and the statuses of the refused ones. */
async function storm (t: Test, url: string, count: number): Promise<{ open: Attempt[], refused: Map<number, number> }> {
  const attempts = Array.from({ length: count }, () => attempt(t, url))
  const results = await Promise.all(attempts.map(a => a.result))
  const refused = new Map<number, number>()
  for (const result of results) if (result !== 'open') refused.set(result, (refused.get(result) ?? 0) + 1)
  return { open: attempts.filter((_, i) => results[i] === 'open'), refused }
}

async function closeAll (attempts: Attempt[]): Promise<void> {
  await Promise.all(attempts.map(async ({ ws }) => {
    if (ws.readyState === WebSocket.CLOSED) return
    const closed = new Promise(resolve => ws.once('close', resolve))
    ws.close()
    await closed
  }))
}

const brokers: Array<[string, (t: Test) => Partial<Config>]> = [
  ['memory broker', () => ({})],
  ['Redis broker', t => ({ redisUrl: REDIS_URL, redisPrefix: redisPrefix(t) })]
]

for (const [name, brokerConfig] of brokers) {
  t.test(name, async t => {
    const start = async (t: Test, overrides: Partial<Config>): Promise<Server> =>
      await startServer(t, { jwtSecret: SECRET, rateLimitMax: 100000, ...brokerConfig(t), ...overrides })

    t.test('500 concurrent upgrades of one user admit exactly MAX_CONNECTIONS_PER_USER, again after closing', async t => {
      const server = await start(t, { maxConnectionsPerUser: 100 })
      const url = `${server.wsUrl}?token=${mint({ sub: 'alice', jti: 'caps-alice' })}`
      const first = await storm(t, url, 500)
      t.equal(first.open.length, 100, 'exactly 100 admitted')
      t.same([...first.refused], [[429, 400]], 'the other 400 refused with 429')
      const admissions = server.app[kRealtimeNode].admissions
      t.equal(admissions.reservedBy('alice'), 100, '100 slots held')
      await closeAll(first.open)
      await eventually('every slot given back', () => admissions.reserved === 0)
      const second = await storm(t, url, 150)
      t.equal(second.open.length, 100, 'the freed slots admit exactly 100 again (no leak)')
      await closeAll(second.open)
    })

    t.test('100 concurrent upgrades admit exactly MAX_CONNECTIONS, again after closing', async t => {
      const server = await start(t, { maxConnections: 10 })
      // One user per upgrade, so that only the node's cap applies.
      const attempts = Array.from({ length: 100 }, (_, i) => attempt(t, `${server.wsUrl}?token=${mint({ sub: `user-${i}`, jti: `caps-${i}` })}`))
      const results = await Promise.all(attempts.map(a => a.result))
      const open = attempts.filter((_, i) => results[i] === 'open')
      t.equal(open.length, 10, 'exactly 10 admitted')
      t.ok(results.every(result => result === 'open' || result === 503), 'the others refused with 503')
      const node = server.app[kRealtimeNode]
      t.equal(node.hub.connections.size, 10)
      await closeAll(open)
      await eventually('every slot given back', () => node.admissions.reserved === 0)
      const again = await storm(t, `${server.wsUrl}?token=${mint({ sub: 'bob', jti: 'caps-bob' })}`, 30)
      t.equal(again.open.length, 10, 'the freed slots admit exactly 10 again (no leak)')
      await closeAll(again.open)
    })

    t.test('an upgrade refused after its slot was reserved gives the slot back', async t => {
      const server = await start(t, { maxConnections: 1, maxConnectionsPerUser: 1, allowedOrigins: ['https://good.example'] })
      const admissions = server.app[kRealtimeNode].admissions
      const token = mint({ sub: 'carol', jti: 'caps-carol' })
      // Bad Origin: refused (403) after the node slot was reserved.
      for (let i = 0; i < 5; i++) {
        t.equal(await attempt(t, `${server.wsUrl}?token=${token}`, { origin: 'https://evil.example' }).result, 403)
      }
      // A bad token: refused (401) after the node slot was reserved.
      t.equal(await attempt(t, `${server.wsUrl}?token=${mint({ sub: 'carol' }, { key: 'wrong-secret-wrong-secret-wrong-secret' })}`).result, 401)
      t.equal(admissions.reserved, 0, 'no slot held by the refused upgrades')
      const admitted = attempt(t, `${server.wsUrl}?token=${token}`, { origin: 'https://good.example' })
      t.equal(await admitted.result, 'open', 'the only slot is still free')
      await closeAll([admitted])
      await eventually('the slot given back', () => admissions.reserved === 0)
    })

    t.test('an upgrade refused by the HTTP rate limit gives both its slots back', async t => {
      const server = await start(t, { maxConnectionsPerUser: 1, rateLimitMax: 1, rateLimitWindow: 60000 })
      const admissions = server.app[kRealtimeNode].admissions
      const url = `${server.wsUrl}?token=${mint({ sub: 'dave', jti: 'caps-dave' })}`
      const first = attempt(t, url)
      t.equal(await first.result, 'open')
      await closeAll([first])
      await eventually('the slot given back', () => admissions.reserved === 0)
      // Reserves the node's and dave's slot, then the rate limiter (a preHandler) refuses it.
      t.equal(await attempt(t, url).result, 429)
      t.equal(admissions.reserved, 0, 'no node slot held')
      t.equal(admissions.reservedBy('dave'), 0, 'no slot of dave held')
    })

    t.test('an upgrade abandoned by its client gives its slot back', async t => {
      const server = await start(t, { maxConnections: 1 })
      const admissions = server.app[kRealtimeNode].admissions
      const { port } = new URL(server.url)
      // Sends the upgrade and goes away once the server holds a slot for it (whether still admitting it
      // or already accepted: the same TCP close gives the slot back).
      const socket = tcpConnect(Number(port), '127.0.0.1')
      socket.on('error', () => {})
      const token = mint({ sub: 'erin', jti: 'caps-erin' })
      socket.write(`GET /ws?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
      await eventually('a slot reserved for the upgrade', () => admissions.reserved === 1, 5000, 1)
      socket.destroy()
      await eventually('the slot given back', () => admissions.reserved === 0)
      const admitted = attempt(t, `${server.wsUrl}?token=${token}`)
      t.equal(await admitted.result, 'open', 'the only slot is free')
    })
  })
}

t.test('a server process on Redis (as the issue measured it)', async t => {
  const prefix = redisPrefix(t)
  const node = await spawnNode(t, {
    REDIS_URL, REDIS_PREFIX: prefix, JWT_SECRET: SECRET, RATE_LIMIT_MAX: '100000', MAX_CONNECTIONS: '50', MAX_CONNECTIONS_PER_USER: '20'
  })
  const perUser = await storm(t, `${node.wsUrl}?token=${mint({ sub: 'frank', jti: 'caps-frank' })}`, 300)
  t.equal(perUser.open.length, 20, 'exactly MAX_CONNECTIONS_PER_USER of 300 concurrent upgrades admitted')
  // Upgrades still being admitted hold a node slot too: some of the refused ones met MAX_CONNECTIONS.
  t.same([...perUser.refused.keys()].filter(status => status !== 429 && status !== 503), [], 'the others refused with 429 or 503')
  await closeAll(perUser.open)
  // Different users: only MAX_CONNECTIONS applies.
  const attempts = Array.from({ length: 300 }, (_, i) => attempt(t, `${node.wsUrl}?token=${mint({ sub: `u${i}`, jti: `caps-u${i}` })}`))
  const results = await Promise.all(attempts.map(a => a.result))
  t.equal(results.filter(result => result === 'open').length, 50, 'exactly MAX_CONNECTIONS of 300 concurrent upgrades admitted')
  t.ok(results.every(result => result === 'open' || result === 503), 'the others refused with 503')
  await closeAll(attempts.filter((_, i) => results[i] === 'open'))
  await eventually('every slot given back', async () => {
    const again = await storm(t, `${node.wsUrl}?token=${mint({ sub: 'frank', jti: 'caps-frank' })}`, 1)
    await closeAll(again.open)
    return again.open.length === 1
  })
})
