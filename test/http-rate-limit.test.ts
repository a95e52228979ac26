// The HTTP rate limit's parts: the in-memory and Redis window stores (src/core/http-rate-limit.ts),
// the wording of its 429, and the plugin on routes that have preHandlers of their own.
import Fastify from 'fastify'
import t from 'tap'
import auth from '../plugins/auth.js'
import { kRealtimeNode } from '../plugins/broadcast.js'
import rateLimit from '../plugins/rate-limit.js'
import { MemoryWindowStore, RedisWindowStore, retryIn } from '../src/core/http-rate-limit.js'
import { redisClient, redisPrefix } from './fixtures/cluster.js'
import { eventually, listen, startServer } from './helpers.js'

t.test('memory: a fixed window from the first request; ended windows are dropped', async t => {
  const store = new MemoryWindowStore(1000)
  t.teardown(() => store.close())
  t.same(store.hit('a', 0), { count: 1, resetAt: 1000 })
  t.same(store.hit('a', 999), { count: 2, resetAt: 1000 }, 'the window does not move')
  t.same(store.hit('b', 500), { count: 1, resetAt: 1500 })
  store.sweep(1000)
  t.equal(store.size, 1, "a's window has ended")
  t.same(store.hit('a', 1200), { count: 1, resetAt: 2200 }, 'an ended window starts again at the next request')
  t.same(store.hit('b', 1499), { count: 2, resetAt: 1500 })
  store.sweep(1500)
  t.equal(store.size, 1, "b's window has ended, a's has not")
  t.same(store.hit('a', 1500), { count: 2, resetAt: 2200 })
  t.same(store.hit('b', 1600), { count: 1, resetAt: 2600 })
  store.sweep(2200)
  t.same([store.size, store.hit('b', 2200).count], [1, 2], 'a window that started anew is swept when it ends, not before')
  store.close()
  t.equal(store.size, 0)
})

t.test('memory: past maxWindows callers, the window that ends soonest goes', async t => {
  const store = new MemoryWindowStore(1000, 2)
  t.teardown(() => store.close())
  store.hit('a', 0)
  store.hit('b', 10)
  store.hit('b', 20)
  store.hit('c', 30)
  t.equal(store.size, 2)
  t.equal(store.hit('b', 40).count, 3, 'b kept its count')
  t.same(store.hit('a', 50), { count: 1, resetAt: 1050 }, 'a was dropped for c')
  t.equal(store.hit('c', 60).count, 2, 'c kept its count')
  t.equal(store.hit('b', 70).count, 1, 'b was dropped for a: its window ended before c\'s')
})

t.test('memory: the sweep runs on its own, so callers that never come back cost nothing', async t => {
  const store = new MemoryWindowStore(1, 5000, 5)
  t.teardown(() => store.close())
  for (let i = 0; i < 1000; i++) store.hit(`ip:10.0.${i >> 8}.${i & 255}`, Date.now())
  await eventually('swept', () => store.size === 0)
  t.pass()
})

t.test('redis: INCR with PEXPIRE on the first request; a counter without expiry gets one', async t => {
  const redis = await redisClient(t)
  const prefix = `${redisPrefix(t)}ratelimit:`
  const store = new RedisWindowStore(redis, prefix, 60000)
  const now = Date.now()
  t.same(await store.hit('user:a', now), { count: 1, resetAt: now + 60000 })
  const second = await store.hit('user:a', now)
  t.equal(second.count, 2)
  t.ok(second.resetAt > now && second.resetAt <= now + 60000, 'the rest of the same window')
  t.ok(await redis.pttl(`${prefix}user:a`) > 0)

  await redis.set(`${prefix}user:stale`, '5')
  t.same(await store.hit('user:stale', now), { count: 6, resetAt: now + 60000 }, 'counted, in a new window')
  t.ok(await redis.pttl(`${prefix}user:stale`) > 0, 'it expires now')

  const again = new RedisWindowStore(redis, prefix, 60000)
  t.equal((await again.hit('user:a', now)).count, 3, 'a second store on the same client shares the script and the counters')
  again.close()

  await redis.hset(`${prefix}user:hash`, 'f', 'v')
  await t.rejects(store.hit('user:hash', now), /WRONGTYPE/, 'a Redis error rejects (the plugin then lets the request through)')
})

t.test('the 429 says when to retry, in the largest whole unit', async t => {
  t.same([1, 42, 59, 60, 89, 150, 3600, 7200, 86_400, 172_800].map(retryIn),
    ['1 second', '42 seconds', '59 seconds', '1 minute', '1 minute', '3 minutes', '1 hour', '2 hours', '1 day', '2 days'])
})

t.test("a route's own preHandlers keep running, before the limit; config.rateLimit false opts out", async t => {
  const server = await startServer(t, { rateLimitMax: 2, rateLimitWindow: 60000 })
  const node = server.app[kRealtimeNode]
  const app = Fastify()
  await app.register(auth, { config: node.config })
  await app.register(rateLimit, { config: node.config, node })
  const ran: string[] = []
  app.get('/one', { preHandler: (_request, _reply, done) => { ran.push('one'); done() } }, async () => ({ ok: true }))
  app.get('/many', { preHandler: [(_request, _reply, done) => { ran.push('many'); done() }] }, async () => ({ ok: true }))
  app.get('/free', { config: { rateLimit: false } }, async () => ({ ok: true }))
  const url = await listen(t, app)
  const statuses = []
  for (const path of ['/one', '/many', '/one', '/free', '/free', '/free']) {
    const response = await fetch(`${url}${path}`)
    statuses.push([path, response.status, response.headers.get('x-ratelimit-remaining')])
    await response.arrayBuffer()
  }
  t.same(statuses, [['/one', 200, '1'], ['/many', 200, '0'], ['/one', 429, '0'], ['/free', 200, null], ['/free', 200, null], ['/free', 200, null]])
  t.same(ran, ['one', 'many', 'one'])
})
