// Outages with a handed client (the `redis` option): the host's client keeps ioredis' defaults (an
// offline queue, no command timeout), yet publishes fail at once while Redis is down, a stalled Redis
// fails them within the broker's command timeout, and the node recovers by itself as with its own
// connections. Each test runs its own redis-server on a free port.
import fastifyRedis from '@fastify/redis'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { kRealtimeNode } from '../plugins/node.js'
import { realtime } from '../src/index.js'
import { connect, getJson, listen, postJson, within } from './helpers.js'
import { eventually, privateRedis } from './fixtures/cluster.js'

/** A host whose @fastify/redis makes its client from `redisUrl` (ioredis' defaults), handed to the plugin. */
async function host (t: Test, redisUrl: string, nodeId: string): Promise<{ app: FastifyInstance, url: string, wsUrl: string }> {
  const app = Fastify()
  await app.register(fastifyRedis, { url: redisUrl })
  await app.register(realtime, { logLevel: 'silent', redis: app.redis, redisPrefix: `rt-handed-${nodeId}:`, nodeId })
  const url = await listen(t, app)
  return { app, url, wsUrl: `${url.replace('http', 'ws')}/ws` }
}

t.test('Redis down: 503 at once though the client would queue, and back by itself', async t => {
  const redis = await privateRedis(t)
  const server = await host(t, redis.url, 'down')
  const client = await connect(t, server.wsUrl)
  await client.request({ type: 'subscribe', topic: 'handed.feed' })
  t.match(await postJson(`${server.url}/api/publish`, { topic: 'handed.feed', data: 'before' }), { status: 200, body: { offset: 1 } })
  await client.next(f => f.type === 'message' && f.data === 'before')

  await redis.stop()
  await eventually('readiness turns 503', async () => (await getJson(`${server.url}/health/ready`)).status === 503)
  const started = Date.now()
  const refused = await postJson(`${server.url}/api/publish`, { topic: 'handed.feed', data: 'lost?' })
  t.match(refused, { status: 503, body: { code: 'unavailable' } }, 'HTTP publish answers 503')
  t.ok(Date.now() - started < 500, `at once (${Date.now() - started} ms), not queued in the client's offline queue`)
  t.match(await client.request({ type: 'history', topic: 'handed.feed' }), { type: 'error', code: 'unavailable' })

  await redis.start()
  await eventually('readiness back to 200', async () => (await getJson(`${server.url}/health/ready`)).status === 200, 10000)
  const after = await postJson(`${server.url}/api/publish`, { topic: 'handed.feed', data: 'after' })
  t.match(after, { status: 200, body: { offset: 1 } }, 'a new epoch: this Redis kept nothing')
  t.match(await client.next(f => f.type === 'message' && f.data === 'after'), { offset: 1 }, 'live delivery resumed')
  t.same(client.messages('handed.feed').map(m => m.data), ['before', 'after'], 'nothing refused was delivered')
  t.equal(server.app.redis.status, 'ready', 'the host\'s client reconnected, and is still the host\'s')
})

t.test('a stalled Redis: a publish on the handed client fails within the command timeout, then recovers', async t => {
  const redis = await privateRedis(t)
  const server = await host(t, redis.url, 'stall')
  redis.pause()
  t.teardown(() => redis.resume())
  const started = Date.now()
  // Sent while the client still looks ready: the client itself would wait for ever.
  const stalled = server.app.realtime.publish('stall.feed', 'stalled', { idempotencyKey: 'k1' })
  await t.rejects(within(stalled, 8000, 'the publish'), { code: 'BROKER_UNAVAILABLE' })
  t.ok(Date.now() - started <= 6000, `refused after ${Date.now() - started} ms`)
  await eventually('readiness turns 503', async () => (await getJson(`${server.url}/health/ready`)).status === 503, 10000, 100)
  redis.resume()
  await eventually('readiness back to 200', async () => (await getJson(`${server.url}/health/ready`)).status === 200, 10000, 100)
  t.equal(server.app[kRealtimeNode].broker.up, true)
  // The refused publish may still land when Redis resumes, even twice: the host's client resends the
  // commands in flight when its connection was dropped (autoResendUnfulfilledCommands, its default).
  // Its idempotency key keeps it to one publication, and a retry with the key answers that one.
  t.match(await server.app.realtime.publish('stall.feed', 'stalled', { idempotencyKey: 'k1' }), { offset: 1 }, 'the retry answers the one publication')
  t.match(await server.app.realtime.publish('stall.feed', 'next'), { offset: 2 }, 'publishing works again')
  const history = await server.app.realtime.history('stall.feed')
  t.equal(history.publications.length, 2, 'no duplicate in history')
})
