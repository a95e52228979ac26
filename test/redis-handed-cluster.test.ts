// The `redis` option with a Cluster client (a host's app.redis on a Redis Cluster): the plugin picks
// the Redis Cluster broker by the client's shape, runs its commands on it, opens one subscriber per
// shard from the client's node options, and leaves the client open. Two apps share one client here.
import fastifyRedis from '@fastify/redis'
import Fastify, { type FastifyInstance } from 'fastify'
import { Cluster, Redis } from 'ioredis'
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { kRealtimeNode } from '../plugins/node.js'
import { RedisClusterBroker } from '../src/core/brokers/redis-cluster.js'
import { keySlot } from '../src/core/brokers/redis-cluster-slots.js'
import { realtime, type RealtimeOptions } from '../src/index.js'
import { connect, getJson, listen, postJson } from './helpers.js'
import { eventually } from './fixtures/cluster.js'
import { sharedRedisCluster, type RedisClusterFixture } from './fixtures/redis-cluster.js'

const cluster = await sharedRedisCluster()

async function hostOn (t: Test, client: Cluster, options: RealtimeOptions): Promise<{ app: FastifyInstance, url: string, wsUrl: string }> {
  const app = Fastify()
  await app.register(fastifyRedis, { client })
  await app.register(realtime, { logLevel: 'silent', redis: app.redis, ...options })
  const url = await listen(t, app)
  return { app, url, wsUrl: `${url.replace('http', 'ws')}/ws` }
}

/** One topic per master, named `<base>.<n>`. */
async function topicPerShard (fixture: RedisClusterFixture, base: string): Promise<string[]> {
  const byMaster = new Map<number, string>()
  for (let n = 0; byMaster.size < 3; n++) {
    const master = await fixture.masterOf(keySlot(`${base}.${n}`))
    if (!byMaster.has(master)) byMaster.set(master, `${base}.${n}`)
  }
  return [...byMaster.values()]
}

/** Names of the connections on every master whose name starts with `prefix`. */
async function connectionNames (t: Test, prefix: string): Promise<string[]> {
  const names: string[] = []
  for (const port of cluster.ports) {
    const client = new Redis(port, '127.0.0.1', cluster.clientOptions)
    t.teardown(() => client.disconnect())
    const list = await client.client('LIST') as string
    names.push(...list.split('\n').flatMap(line => /name=(\S+)/.exec(line)?.[1] ?? []).filter(name => name.startsWith(prefix)))
  }
  return names.sort()
}

t.test('a handed Cluster client carries two apps: sharded delivery on every shard, history, left open', async t => {
  const prefix = `rt-test-${randomBytes(6).toString('hex')}:`
  // As a host makes it: ioredis' defaults (offline queue on, no periodic slot refresh).
  const shared = new Cluster(cluster.nodes, { redisOptions: cluster.clientOptions })
  t.teardown(() => { shared.disconnect() })
  await new Promise(resolve => shared.once('ready', resolve))
  const listenersBefore = ['error', 'close', 'ready', 'refresh'].map(event => shared.listenerCount(event))
  const a = await hostOn(t, shared, { redisPrefix: prefix, nodeId: 'a' })
  const b = await hostOn(t, shared, { redisPrefix: prefix, nodeId: 'b' })
  t.type(b.app[kRealtimeNode].broker, RedisClusterBroker, 'a Cluster client selects the Redis Cluster broker')
  t.equal((await getJson(`${b.url}/health/ready`)).status, 200)

  const topics = await topicPerShard(cluster, 'handed')
  const reader = await connect(t, b.wsUrl)
  for (const topic of topics) t.match(await reader.request({ type: 'subscribe', topic }), { type: 'ack', topic })
  for (const topic of topics) {
    t.match(await postJson(`${a.url}/api/publish`, { topic, data: topic }), { status: 200, body: { offset: 1 } }, `published on ${topic} by app a`)
  }
  for (const topic of topics) t.match(await reader.next(f => f.type === 'message' && f.topic === topic), { data: topic, offset: 1 }, `${topic} delivered by app b`)
  t.match(await b.app.realtime.history(topics[0]), { offset: 1, publications: [{ offset: 1 }] }, 'history through the handed client')
  t.same(await connectionNames(t, prefix), cluster.ports.flatMap(port => [`${prefix}sub@127.0.0.1:${port}:a`, `${prefix}sub@127.0.0.1:${port}:b`]).sort(),
    'one subscriber per shard and app, made from the client\'s node options')

  // The client rereads no slot map by itself; the brokers make it, to follow failovers.
  let refreshes = 0
  const onRefresh = (): void => { refreshes++ }
  shared.on('refresh', onRefresh)
  await eventually('the slot map reread', () => refreshes > 0, 5000)
  shared.off('refresh', onRefresh)

  await a.app.close()
  await b.app.close()
  t.equal(shared.status, 'ready', 'the handed Cluster client is still open')
  await shared.set(`${prefix}after`, 'yes')
  t.equal(await shared.get(`${prefix}after`), 'yes', 'and works')
  await shared.del(`${prefix}after`)
  t.same(['error', 'close', 'ready', 'refresh'].map(event => shared.listenerCount(event)), listenersBefore, 'no listener of the apps left on it')
  await eventually('the shard subscribers are gone', async () => (await connectionNames(t, prefix)).length === 0)
})
