// From a URL (redisUrl / REDIS_URL) the plugin opens its own connections and registers @fastify/redis
// with its command connection, in a context of its own: a host that registers @fastify/redis itself,
// before the plugin or after it, keeps its own app.redis. @fastify/redis closes our connection when
// the app closes, after the node has left, also while Redis is down.
import fastifyRedis from '@fastify/redis'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import { kRealtimeNode } from '../plugins/node.js'
import { RedisBroker } from '../src/core/brokers/redis.js'
import { realtime } from '../src/index.js'
import { connect, getJson, listen, postJson, startServer, within } from './helpers.js'
import { eventually, privateRedis, REDIS_URL, redisClient, redisPrefix } from './fixtures/cluster.js'

for (const order of ['before', 'after'] as const) {
  t.test(`a host registering @fastify/redis ${order} the plugin keeps its app.redis; ours is closed with the app`, async t => {
    const prefix = redisPrefix(t)
    const app = Fastify()
    const host = async (): Promise<void> => { await app.register(fastifyRedis, { url: REDIS_URL, connectionName: 'the-host' }) }
    if (order === 'before') await host()
    await app.register(realtime, { prefix: '/rt', logLevel: 'silent', redisUrl: REDIS_URL, redisPrefix: prefix, nodeId: 'n' })
    if (order === 'after') await host()
    app.get('/host', async () => ({ pong: await app.redis.ping() }))
    const url = await listen(t, app)

    t.equal(app.redis.options.connectionName, 'the-host', 'app.redis is the host\'s client')
    t.equal(app.redis.realtime, undefined, 'with nothing of ours filed in it')
    const broker = app[kRealtimeNode].broker as RedisBroker
    t.not(broker.commands, app.redis, 'our broker runs on a connection of its own')
    t.same((await getJson(`${url}/host`)).body, { pong: 'PONG' }, 'the host\'s route uses its client')

    const client = await connect(t, `${url.replace('http', 'ws')}/rt/ws`)
    await client.request({ type: 'subscribe', topic: 'both.feed' })
    t.match(await postJson(`${url}/rt/api/publish`, { topic: 'both.feed', data: 1 }), { status: 200, body: { offset: 1 } })
    t.match(await client.next(f => f.type === 'message'), { data: 1 })

    const redis = await redisClient(t)
    const ours = async (): Promise<string[]> => (await redis.client('LIST') as string).split('\n')
      .flatMap(line => /name=(\S+)/.exec(line)?.[1] ?? []).filter(name => name.startsWith(prefix)).sort()
    t.same(await ours(), [`${prefix}cmd:n`, `${prefix}sub:n`])
    const hostClient = app.redis
    await app.close()
    t.equal(broker.commands.status, 'end', 'our command connection ended when app.close() resolved (@fastify/redis quit it)')
    // @fastify/redis' own close resolves once QUIT is answered, before the connection has ended.
    await eventually('the host\'s @fastify/redis closed its own client', () => hostClient.status === 'end')
    await eventually('Redis saw ours go', async () => (await ours()).length === 0)
    t.same(await redis.smembers(`${prefix}{registry}:nodes`), [], 'the node left the registry first, on the connection @fastify/redis then closed')
  })
}

t.test('app.close() while Redis is down resolves at once and ends our connections', async t => {
  const redis = await privateRedis(t)
  const server = await startServer(t, { redisUrl: redis.url, redisPrefix: 'rt-close-down:', nodeId: 'down' })
  const broker = server.app[kRealtimeNode].broker as RedisBroker
  await redis.stop()
  await eventually('readiness turns 503', async () => (await getJson(`${server.url}/health/ready`)).status === 503)
  const started = Date.now()
  await within(server.app.close(), 3000, 'app.close()')
  t.ok(Date.now() - started < 2000, `closed in ${Date.now() - started} ms`)
  t.equal(broker.commands.status, 'end', 'the command connection stopped reconnecting')
})

t.test('Redis out of reach at start: the node serves unready, and app.close() still ends the connection', async t => {
  const redis = await privateRedis(t)
  await redis.stop()
  const app: FastifyInstance = Fastify()
  await app.register(realtime, { logLevel: 'silent', redisUrl: redis.url, redisPrefix: 'rt-late-close:', nodeId: 'late' })
  await within(Promise.resolve(app.ready()).then(() => {}), 8000, 'the start (not held by @fastify/redis)')
  t.equal(app[kRealtimeNode].broker.up, false)
  const broker = app[kRealtimeNode].broker as RedisBroker
  await within(app.close(), 3000, 'app.close()')
  t.equal(broker.commands.status, 'end')
})
