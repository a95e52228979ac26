// The HTTP rate limit: RATE_LIMIT_MAX requests per caller per window, shared across nodes through
// Redis, upgrades counted too, admin callers and health probes exempt.
import Fastify from 'fastify'
import t from 'tap'
import { kRealtimeNode } from '../plugins/broadcast.js'
import realtime from '../plugins/realtime.js'
import { SECRET, bearer, mint } from './auth-tokens.js'
import { REDIS_URL, redisPrefix } from './fixtures/cluster.js'
import { connect, getJson, postJson, refusedUpgrade, startServer } from './helpers.js'

const API_KEY = 'rate-limit-test-api-key'
const secured = { jwtSecret: SECRET, apiKey: API_KEY, defaultPublish: ['>'], defaultSubscribe: ['>'] }

t.test('a caller past RATE_LIMIT_MAX gets 429 with retry-after; others are not affected', async t => {
  const server = await startServer(t, { ...secured, rateLimitMax: 3, rateLimitWindow: 60000 })
  const alice = bearer(mint({ sub: 'alice' }))
  for (let i = 0; i < 3; i++) {
    t.equal((await postJson(`${server.url}/api/publish`, { topic: 'a', data: i }, alice)).status, 200)
  }
  const response = await fetch(`${server.url}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...alice },
    body: JSON.stringify({ topic: 'a', data: 4 })
  })
  t.equal(response.status, 429)
  t.ok(Number(response.headers.get('retry-after')) > 0, 'retry-after in seconds')
  t.match(await response.json(), { statusCode: 429, code: 'rate_limited', message: /rate limit exceeded/ })

  const history = await getJson(`${server.url}/api/topics/a/history`, alice)
  t.equal(history.status, 429, 'the budget covers every API route, not only publish')
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'a', data: 'bob' }, bearer(mint({ sub: 'bob' })))).status, 200, 'another user has a budget of their own')
  t.equal(server.app[kRealtimeNode].stats.rateLimited.http, 2)
})

t.test('admin callers and health probes are exempt', async t => {
  const server = await startServer(t, { ...secured, rateLimitMax: 1 })
  for (let i = 0; i < 5; i++) {
    t.equal((await postJson(`${server.url}/api/publish`, { topic: 'a', data: i }, { 'x-api-key': API_KEY })).status, 200, 'API key')
    t.equal((await postJson(`${server.url}/api/publish`, { topic: 'a', data: i }, bearer(mint({ sub: 'root', admin: true })))).status, 200, 'admin token')
    t.equal((await getJson(`${server.url}/health/ready`)).status, 200, 'readiness')
    t.equal((await getJson(`${server.url}/health/live`)).status, 200, 'liveness')
  }
})

t.test('anonymous callers are limited by IP, also in open mode', async t => {
  const server = await startServer(t, { rateLimitMax: 2 })
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'a', data: 1 })).status, 200)
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'a', data: 2 })).status, 200)
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'a', data: 3 })).status, 429)
})

t.test('websocket upgrades count against the same budget (scope connect)', async t => {
  const server = await startServer(t, { ...secured, rateLimitMax: 2 })
  const token = mint({ sub: 'carol' })
  await connect(t, `${server.wsUrl}?token=${token}`)
  await connect(t, `${server.wsUrl}?token=${token}`)
  const refused = await refusedUpgrade(`${server.wsUrl}?token=${token}`)
  t.equal(refused.status, 429)
  t.ok(refused.headers['retry-after'], 'retry-after')
  t.equal(server.app[kRealtimeNode].stats.rateLimited.connect, 1)
  t.equal(server.app[kRealtimeNode].hub.counts.connections, 2)
})

t.test('with Redis, the budget is shared by every node', async t => {
  const shared = { ...secured, rateLimitMax: 4, redisUrl: REDIS_URL, redisPrefix: redisPrefix(t) }
  const first = await startServer(t, shared)
  const second = await startServer(t, shared)
  const dave = bearer(mint({ sub: 'dave' }))
  for (const server of [first, second, first, second]) {
    t.equal((await postJson(`${server.url}/api/publish`, { topic: 'a', data: 1 }, dave)).status, 200)
  }
  t.equal((await postJson(`${second.url}/api/publish`, { topic: 'a', data: 5 }, dave)).status, 429)
  t.equal((await postJson(`${first.url}/api/publish`, { topic: 'a', data: 6 }, dave)).status, 429)
})

t.test("a host's own routes are not limited by RATE_LIMIT_MAX", async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.get('/host', async () => ({ ok: true }))
  await app.register(realtime, { prefix: '/rt', rateLimitMax: 1, logLevel: 'silent' })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  const url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
  for (let i = 0; i < 3; i++) t.equal((await getJson(`${url}/host`)).status, 200)
  t.equal((await postJson(`${url}/rt/api/publish`, { topic: 'a', data: 1 })).status, 200)
  t.equal((await postJson(`${url}/rt/api/publish`, { topic: 'a', data: 2 })).status, 429)
})
