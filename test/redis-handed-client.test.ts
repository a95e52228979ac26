// The `redis` option: a host's ioredis client (its app.redis from @fastify/redis) handed to the
// plugin. The plugin runs its commands on it, opens its subscriber with client.duplicate(), closes
// that duplicate and never the client: one client can carry several apps' traffic and outlives them.
import fastifyRedis from '@fastify/redis'
import Fastify, { type FastifyInstance } from 'fastify'
import { Cluster, Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { kRealtimeNode } from '../plugins/node.js'
import { startupSummary } from '../plugins/startup-summary.js'
import { configWith } from '../src/config.js'
import { RedisBroker } from '../src/core/brokers/redis.js'
import { RedisClusterBroker } from '../src/core/brokers/redis-cluster.js'
import { realtime, type RealtimeOptions } from '../src/index.js'
import { mint, SECRET } from './auth-tokens.js'
import { connect, getJson, listen, postJson } from './helpers.js'
import { eventually, REDIS_URL, redisClient, redisPrefix } from './fixtures/cluster.js'

/** A host app with @fastify/redis on `client` (not closing it), and the plugin on its app.redis under /rt. */
async function hostOn (t: Test, client: Redis, options: RealtimeOptions): Promise<{ app: FastifyInstance, url: string, wsUrl: string }> {
  const app = Fastify()
  await app.register(fastifyRedis, { client })
  await app.register(realtime, { prefix: '/rt', logLevel: 'silent', redis: app.redis, ...options })
  const url = await listen(t, app)
  return { app, url, wsUrl: `${url.replace('http', 'ws')}/rt/ws` }
}

/** A client as @fastify/redis makes one from a URL: ioredis' defaults (offline queue on, no command timeout). */
async function hostClient (t: Test, url = REDIS_URL): Promise<Redis> {
  const client = new Redis(url, { connectionName: 'the-host' })
  t.teardown(() => { client.disconnect() })
  await new Promise(resolve => client.once('ready', resolve))
  return client
}

t.test('one handed client carries two apps; it is left open, and its listeners as found, after both close', async t => {
  const prefix = redisPrefix(t)
  const shared = await hostClient(t)
  const listenersBefore = ['error', 'close', 'ready'].map(event => shared.listenerCount(event))
  const a = await hostOn(t, shared, { redisPrefix: prefix, nodeId: 'a' })
  const b = await hostOn(t, shared, { redisPrefix: prefix, nodeId: 'b' })
  t.equal(a.app[kRealtimeNode].broker.up, true, 'app a is up')
  t.equal(b.app[kRealtimeNode].broker.up, true, 'app b is up')

  const subscriber = await connect(t, b.wsUrl)
  await subscriber.request({ type: 'subscribe', topic: 'shared.feed' })
  const published = await postJson(`${a.url}/rt/api/publish`, { topic: 'shared.feed', data: 'from a' })
  t.match(published, { status: 200, body: { offset: 1 } }, 'published on app a')
  t.match(await subscriber.next(f => f.type === 'message'), { topic: 'shared.feed', data: 'from a', offset: 1 }, 'delivered by app b')
  t.match(await b.app.realtime.publish('shared.feed', 'from b'), { offset: 2 }, 'offsets agree across the two apps')
  const history = await getJson(`${b.url}/rt/api/topics/shared.feed/history`)
  t.same(history.body.messages.map((m: { data: unknown }) => m.data), ['from a', 'from b'], 'history on app b')
  t.same((await a.app.realtime.info()).nodes.map(node => node.id), ['a', 'b'], 'both nodes registered through the one client')

  // Each app opened exactly one connection of its own: its subscriber, a duplicate of the client.
  const redis = await redisClient(t)
  const ours = async (): Promise<string[]> => (await redis.client('LIST') as string).split('\n')
    .flatMap(line => /name=(\S+)/.exec(line)?.[1] ?? []).filter(name => name.startsWith(prefix)).sort()
  t.same(await ours(), [`${prefix}sub:a`, `${prefix}sub:b`], 'one subscriber per app, no command connection of their own')

  await a.app.close()
  await b.app.close()
  t.equal(shared.status, 'ready', 'the handed client is still open')
  t.equal(await shared.ping(), 'PONG', 'and answers')
  t.same(['error', 'close', 'ready'].map(event => shared.listenerCount(event)), listenersBefore, 'no listener of the apps left on it')
  await eventually('Redis saw the subscribers go', async () => (await ours()).length === 0)
  t.same(await redis.keys(`${prefix}*`).then(keys => keys.filter(key => key.includes('registry'))), [], 'both nodes left the registry')
})

t.test('the start-up line names the handed client', async t => {
  const shared = await hostClient(t)
  const summary = startupSummary(configWith({ redisPrefix: 'rt-x:' }), { redis: shared, metricsRoutes: 'realtime', auth: 'open' })
  t.match(summary, { broker: 'redis', redis: 'handed client at 127.0.0.1:6379', redisPrefix: 'rt-x:' })
})

t.test('what the redis option refuses, by name', async t => {
  const shared = await hostClient(t)
  const refused = async (options: RealtimeOptions): Promise<Error> => {
    const app = Fastify()
    t.teardown(() => app.close())
    return await app.register(realtime, { logLevel: 'silent', ...options }).ready().then(() => { throw new Error('registered') }, (err: Error) => err)
  }
  t.match(await refused({ redis: { status: 'ready' } as never }), { name: 'ConfigError', message: /^invalid configuration: redis must be an ioredis client \(Redis or Cluster\), such as @fastify\/redis' app\.redis; got Object \(no duplicate\)/ })
  t.match(await refused({ redis: shared, redisUrl: REDIS_URL }), { name: 'ConfigError', message: /^invalid configuration: redis cannot be given with redisUrl or redisClusterNodes/ })
  const prefixed = new Redis(REDIS_URL, { lazyConnect: true, keyPrefix: 'theirs:' })
  t.match(await refused({ redis: prefixed }), { name: 'ConfigError', message: /^invalid configuration: redis has keyPrefix 'theirs:': give the prefix as redisPrefix/ })
  const closed = new Redis(REDIS_URL, { lazyConnect: true })
  closed.disconnect()
  t.match(await refused({ redis: closed }), { name: 'ConfigError', message: /^invalid configuration: redis is a closed client/ })
  t.equal(shared.status, 'ready', 'a refused registration leaves the client alone')
})

t.test('the brokers, outside Fastify, check the client they are given', async t => {
  const settings = { prefix: 'rt-unused:', nodeId: 'n', historySize: 10, historyTtl: 60 }
  const standalone = new Redis(REDIS_URL, { lazyConnect: true })
  const cluster = new Cluster([{ host: '127.0.0.1', port: 7000 }], { lazyConnect: true })
  t.throws(() => new RedisBroker({ client: cluster, ...settings }), { message: 'RedisBroker client is a Cluster client: use RedisClusterBroker' })
  t.throws(() => new RedisClusterBroker({ client: standalone, ...settings }), { message: 'RedisClusterBroker client is not a Cluster client: use RedisBroker' })
  t.throws(() => new RedisBroker({ client: standalone, url: REDIS_URL, ...settings }), { message: 'RedisBroker takes one of url and client' })
  t.throws(() => new RedisBroker({ client: {} as never, ...settings }), { message: /^RedisBroker client must be an ioredis client/ })
  t.equal(standalone.status, 'wait', 'nothing connected')
})

t.test('the example of docs/ecosystem.md: a host with @fastify/redis hands app.redis over', async t => {
  const prefix = redisPrefix(t)
  const env = { REDIS_URL, JWT_SECRET: SECRET }
  // ---- as in the docs (redisPrefix, logLevel and port 0 added for the test) ----
  const app = Fastify()
  await app.register(fastifyRedis, { url: env.REDIS_URL })
  await app.register(realtime, { prefix: '/realtime', redis: app.redis, jwtSecret: env.JWT_SECRET, redisPrefix: prefix, logLevel: 'silent' })
  app.get('/visits', async () => ({ visits: await app.redis.incr(`${prefix}visits`) }))
  app.post('/orders', async () => await app.realtime.publish('orders', { status: 'created' }))
  // ----
  const url = await listen(t, app)
  const token = mint({ sub: 'u1', topics: { subscribe: ['orders'], publish: [] } })
  const client = await connect(t, `${url.replace('http', 'ws')}/realtime/ws?token=${token}`)
  await client.request({ type: 'subscribe', topic: 'orders' })
  t.same((await getJson(`${url}/visits`)).body, { visits: 1 }, 'the host\'s own commands on its client')
  t.match(await postJson(`${url}/orders`, {}), { status: 200, body: { offset: 1 } })
  t.match(await client.next(f => f.type === 'message'), { topic: 'orders', data: { status: 'created' } }, 'delivered')
  const redis = app.redis
  await app.close()
  // The plugin closed its subscriber and left the registry before @fastify/redis closed its client.
  await eventually('@fastify/redis closed its client', () => redis.status === 'end')
  const check = await redisClient(t)
  t.same(await check.smembers(`${prefix}{registry}:nodes`), [], 'the node left the registry first')
})
