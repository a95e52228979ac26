// The HTTP rate limit (routes/rate-limit.ts, on @fastify/rate-limit): RATE_LIMIT_MAX requests per
// caller per window, shared across nodes through Redis, upgrades counted too, admin callers and
// health probes exempt; and the HTTP side of USER_INBOUND_RATE, checked right after it. A host's own
// @fastify/rate-limit beside it: test/host-rate-limit.test.ts.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import type { IncomingHttpHeaders } from 'node:http'
import t from 'tap'
import type WebSocket from 'ws'
import auth from '../plugins/auth.js'
import { kRealtimeNode } from '../plugins/node.js'
import rateLimit, { LIMITED_ROUTE } from '../routes/rate-limit.js'
import realtime from '../plugins/realtime.js'
import { SECRET, bearer, mint } from './auth-tokens.js'
import { freePort, REDIS_URL, redisClient, redisPrefix } from './fixtures/cluster.js'
import { connect, eventually, getJson, listen, postJson, refusedUpgrade, startServer } from './helpers.js'

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
  const upgradeHeaders: IncomingHttpHeaders[] = []
  const keepHeaders = (ws: WebSocket): void => { ws.once('upgrade', response => upgradeHeaders.push(response.headers)) }
  await connect(t, `${server.wsUrl}?token=${token}`, {}, keepHeaders)
  await connect(t, `${server.wsUrl}?token=${token}`, {}, keepHeaders)
  t.same(upgradeHeaders.map(headers => headers['x-ratelimit-remaining']), [undefined, undefined], 'ws writes the 101: no window headers on it')
  const refused = await refusedUpgrade(`${server.wsUrl}?token=${token}`)
  t.equal(refused.status, 429)
  t.ok(refused.headers['retry-after'], 'retry-after')
  t.equal(refused.headers['x-ratelimit-remaining'], '0', 'the refusal carries the window')
  t.equal(server.app[kRealtimeNode].stats.rateLimited.connect, 1)
  t.equal(server.app[kRealtimeNode].hub.counts.connections, 2)
})

t.test('with Redis, the budget is shared by every node', async t => {
  const prefix = redisPrefix(t)
  const shared = { ...secured, rateLimitMax: 4, rateLimitWindow: 60000, redisUrl: REDIS_URL, redisPrefix: prefix }
  const first = await startServer(t, shared)
  const second = await startServer(t, shared)
  const dave = bearer(mint({ sub: 'dave' }))
  for (const server of [first, second, first, second]) {
    t.equal((await postJson(`${server.url}/api/publish`, { topic: 'a', data: 1 }, dave)).status, 200)
  }
  t.equal((await postJson(`${second.url}/api/publish`, { topic: 'a', data: 5 }, dave)).status, 429)
  t.equal((await postJson(`${first.url}/api/publish`, { topic: 'a', data: 6 }, dave)).status, 429)
  // @fastify/rate-limit's Redis store on the broker's connection, under REDIS_PREFIX: one counter.
  const redis = await redisClient(t)
  t.same(await redis.keys(`${prefix}ratelimit:*`), [`${prefix}ratelimit:user:dave`])
  t.equal(await redis.get(`${prefix}ratelimit:user:dave`), '6', 'every request counted once, refusals too')
  const ttl = await redis.pttl(`${prefix}ratelimit:user:dave`)
  t.ok(ttl > 0 && ttl <= 60000, `it expires with the window (${ttl} ms)`)
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

/** A POST to /api/publish with its response headers (postJson keeps only status and body). */
async function publish (url: string, data: unknown, headers: Record<string, string> = {}): Promise<{ status: number, headers: Headers, body: any }> {
  const response = await fetch(`${url}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ topic: 'a', data })
  })
  return { status: response.status, headers: response.headers, body: await response.json() }
}

const RATE_HEADERS = ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'retry-after']
const rateHeaders = (headers: Headers): Array<string | null> => RATE_HEADERS.map(name => headers.get(name))

for (const broker of ['memory', 'redis'] as const) {
  t.test(`${broker}: x-ratelimit-* count down; over the limit, retry-after says when the window ends`, async t => {
    const redis = broker === 'redis' ? { redisUrl: REDIS_URL, redisPrefix: redisPrefix(t) } : {}
    const server = await startServer(t, { ...secured, ...redis, rateLimitMax: 3, rateLimitWindow: 60000 })
    const erin = bearer(mint({ sub: 'erin' }))
    const first = await publish(server.url, 1, erin)
    t.same(rateHeaders(first.headers), ['3', '2', '60', null], 'the window starts at the first request')
    for (const remaining of ['1', '0']) {
      const { status, headers } = await publish(server.url, 2, erin)
      t.equal(status, 200)
      t.equal(headers.get('x-ratelimit-remaining'), remaining)
      const reset = Number(headers.get('x-ratelimit-reset'))
      t.ok(reset > 0 && reset <= 60, `reset in seconds (${reset})`)
    }
    const refused = await publish(server.url, 4, erin)
    t.equal(refused.status, 429)
    const [limit, remaining, reset, retryAfter] = rateHeaders(refused.headers)
    t.same([limit, remaining], ['3', '0'])
    t.equal(retryAfter, reset, 'retry-after is the window reset')
    t.ok(Number(retryAfter) > 0 && Number(retryAfter) <= 60)
    t.same(refused.body, {
      statusCode: 429,
      code: 'rate_limited',
      error: 'Too Many Requests',
      message: `rate limit exceeded: at most 3 requests per window; retry in ${retryAfter === '60' ? '1 minute' : `${String(retryAfter)} seconds`}`
    })
    t.equal(server.app[kRealtimeNode].stats.rateLimited.http, 1)
  })

  t.test(`${broker}: a fixed window: the budget is whole again once the window has passed`, async t => {
    const redis = broker === 'redis' ? { redisUrl: REDIS_URL, redisPrefix: redisPrefix(t) } : {}
    const server = await startServer(t, { ...redis, rateLimitMax: 1, rateLimitWindow: 300 })
    t.equal((await publish(server.url, 1)).status, 200)
    const refused = await publish(server.url, 2)
    t.equal(refused.status, 429)
    t.equal(refused.headers.get('retry-after'), '1', 'rounded up to a second')
    t.match(refused.body.message, /retry in 1 second$/)
    // Refused requests count but do not push the window's end back.
    let after: Awaited<ReturnType<typeof publish>> | undefined
    await eventually('a new window', async () => (after = await publish(server.url, 3)).status === 200)
    t.same(rateHeaders((after as { headers: Headers }).headers).slice(0, 2), ['1', '0'], 'the new window counts from 1')
  })
}

t.test('admin callers and unlimited routes get no x-ratelimit-* headers', async t => {
  const server = await startServer(t, { ...secured, rateLimitMax: 1 })
  t.same(rateHeaders((await publish(server.url, 1, { 'x-api-key': API_KEY })).headers), [null, null, null, null], 'API key')
  t.same(rateHeaders((await publish(server.url, 1, bearer(mint({ sub: 'root', admin: true })))).headers), [null, null, null, null], 'admin token')
  for (const path of ['/health/live', '/health/ready', '/openapi.json', '/asyncapi.json', '/client.js']) {
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`${server.url}${path}`)
      t.equal(response.status, 200, path)
      t.same(rateHeaders(response.headers), [null, null, null, null], `${path}: not limited`)
      await response.arrayBuffer()
    }
  }
})

t.test('bad credentials count against the IP, never against the user they name', async t => {
  const server = await startServer(t, { ...secured, rateLimitMax: 2 })
  const forged = bearer(mint({ sub: 'frank' }, { key: 'another-secret-that-is-at-least-32-bytes' }))
  const statuses = []
  for (let i = 0; i < 3; i++) statuses.push((await publish(server.url, i, forged)).status)
  t.same(statuses, [401, 401, 429], 'the route answers 401 while the IP has budget left')
  t.equal((await publish(server.url, 'frank', bearer(mint({ sub: 'frank' })))).status, 200, 'the real frank is not affected')
})

t.test('Redis failing the counter: the request is let through, its headers show the whole budget', async t => {
  const prefix = redisPrefix(t)
  const server = await startServer(t, { ...secured, rateLimitMax: 1, redisUrl: REDIS_URL, redisPrefix: prefix })
  // A counter of the wrong type: INCR answers WRONGTYPE, a real error from a real Redis.
  const redis = await redisClient(t)
  await redis.hset(`${prefix}ratelimit:user:grace`, 'not', 'a counter')
  const grace = bearer(mint({ sub: 'grace' }))
  for (let i = 0; i < 3; i++) {
    const response = await publish(server.url, i, grace)
    t.equal(response.status, 200, 'allowed, never a 500')
    // @fastify/rate-limit's skipOnError: nothing counted, so nothing used up.
    t.same(rateHeaders(response.headers), ['1', '1', '0', null])
  }
  t.equal((await publish(server.url, 1, bearer(mint({ sub: 'heidi' })))).status, 200)
  t.equal((await publish(server.url, 2, bearer(mint({ sub: 'heidi' })))).status, 429, 'other callers are still limited')
})

t.test('USER_INBOUND_RATE over HTTP: a body past the caller\'s bytes is 429; admins are exempt', async t => {
  const server = await startServer(t, { ...secured, userInboundRate: 1024, userInboundBurst: 1024 })
  const data = 'x'.repeat(2000)
  const ivan = bearer(mint({ sub: 'ivan' }))
  t.equal((await publish(server.url, data, ivan)).status, 200, 'a body larger than the burst passes once, on a full bucket')
  const refused = await publish(server.url, data, ivan)
  t.equal(refused.status, 429)
  t.same(refused.body, { statusCode: 429, code: 'rate_limited', error: 'Too Many Requests', message: 'inbound byte rate exceeded: at most 1024 bytes per second per caller' })
  t.equal(refused.headers.get('x-ratelimit-remaining'), String(server.app[kRealtimeNode].config.rateLimitMax - 2), 'counted in the window too')
  t.equal(server.app[kRealtimeNode].stats.rateLimited.bytes, 1)
  t.equal(server.app[kRealtimeNode].stats.rateLimited.http, 0)
  for (let i = 0; i < 3; i++) t.equal((await publish(server.url, data, { 'x-api-key': API_KEY })).status, 200, 'API key')
  t.equal((await getJson(`${server.url}/api/topics/a/history`, ivan)).status, 200, 'a request without a body costs no bytes')
})

t.test('a handed Redis client that is not connected: requests go through at once, uncounted', async t => {
  // ioredis' defaults: an offline queue, 20 retries per command. A counter sent on it would wait for
  // a Redis that is not there; the limiter skips the count while the client is not ready instead.
  const client = new Redis(`redis://127.0.0.1:${await freePort()}`)
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  const app = Fastify()
  await app.register(realtime, { redis: client, redisPrefix: redisPrefix(t), ...secured, rateLimitMax: 1, logLevel: 'silent' })
  const url = await listen(t, app)
  const kim = bearer(mint({ sub: 'kim' }))
  const started = Date.now()
  for (let i = 0; i < 3; i++) {
    const response = await publish(url, i, kim)
    t.match(response, { status: 503, body: { code: 'unavailable' } }, 'the broker\'s own answer, not the limiter\'s')
    t.same(rateHeaders(response.headers), [null, null, null, null], 'not counted')
  }
  t.ok(Date.now() - started < 3000, `at once (${Date.now() - started} ms for three)`)
})

// The limit runs in onRequest, before the body is read, after the route's own onRequest checks.
t.test("on any app: a route's own onRequest hooks run before the limit; LIMITED_ROUTE counts, rateLimit false opts out", async t => {
  const server = await startServer(t, { rateLimitMax: 2, rateLimitWindow: 60000 })
  const node = server.app[kRealtimeNode]
  const app = Fastify()
  await app.register(auth, { config: node.config })
  await app.register(rateLimit, { config: node.config, node })
  const ran: string[] = []
  app.get('/one', { onRequest: (_request, _reply, done) => { ran.push('one'); done() } }, async () => ({ ok: true }))
  app.get('/many', { onRequest: [(_request, _reply, done) => { ran.push('many'); done() }] }, async () => ({ ok: true }))
  app.get('/free', { config: { rateLimit: false } }, async () => ({ ok: true }))
  app.get('/limited', { config: LIMITED_ROUTE }, async () => ({ ok: true }))
  const url = await listen(t, app)
  const statuses = []
  for (const path of ['/one', '/many', '/one', '/free', '/free', '/free', '/limited', 'HEAD /limited']) {
    const [method, at] = path.startsWith('HEAD ') ? ['HEAD', path.slice(5)] : ['GET', path]
    const response = await fetch(`${url}${at}`, { method })
    statuses.push([path, response.status, response.headers.get('x-ratelimit-remaining')])
    await response.arrayBuffer()
  }
  t.same(statuses, [
    ['/one', 200, '1'], ['/many', 200, '0'], ['/one', 429, '0'],
    ['/free', 200, null], ['/free', 200, null], ['/free', 200, null],
    ['/limited', 429, '0'], ['HEAD /limited', 429, '0']
  ], 'one budget per caller across the routes, HEAD included')
  t.same(ran, ['one', 'many', 'one'])
})
