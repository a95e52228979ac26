// The Redis broker on a real Redis Cluster (REDIS_CLUSTER_NODES), beyond the conformance suites that
// run on it too (test/brokers.ts): topics spread over every shard, one subscriber connection per shard,
// server processes as nodes of one deployment, a slot that migrates, and a shard that dies and comes
// back (the others keep serving). Failover to a replica: redis-cluster-failover.test.ts.
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import type { BrokerListener } from '../src/core/broker.js'
import { RedisClusterBroker } from '../src/core/brokers/redis-cluster.js'
import { keySlot } from '../src/core/brokers/redis-cluster-slots.js'
import { mint, SECRET } from './auth-tokens.js'
import { RecordingListener } from './brokers.js'
import { connect, getJson, postJson, startServer } from './helpers.js'
import { eventually, startCluster } from './fixtures/cluster.js'
import { sharedRedisCluster, startRedisCluster, type RedisClusterFixture } from './fixtures/redis-cluster.js'
import { randomBytes } from 'node:crypto'

const API_KEY = 'redis-cluster-test-api-key'
const adminHeaders = { 'x-api-key': API_KEY }
const prefix = (): string => `rt-test-${randomBytes(6).toString('hex')}:`
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)
const metricsText = async (url: string): Promise<string> => await (await fetch(`${url}/metrics`)).text()

async function broker (t: Test, cluster: RedisClusterFixture, keyPrefix: string, nodeId: string, listener: BrokerListener = new RecordingListener(nodeId)): Promise<RedisClusterBroker> {
  const started = new RedisClusterBroker({ nodes: cluster.nodes, prefix: keyPrefix, nodeId, historySize: 100, historyTtl: 300 })
  await started.start(listener)
  t.teardown(() => started.close())
  return started
}

/** One topic per master of the cluster now, named `<base>.<n>` (n found by trying). */
async function topicPerShard (cluster: RedisClusterFixture, base: string): Promise<Map<number, string>> {
  const byMaster = new Map<number, string>()
  const masters = new Set(await Promise.all(range(0, 16383).filter(slot => slot % 512 === 0).map(slot => cluster.masterOf(slot))))
  for (let n = 0; byMaster.size < masters.size; n++) {
    const topic = `${base}.${n}`
    const master = await cluster.masterOf(keySlot(topic))
    if (!byMaster.has(master)) byMaster.set(master, topic)
  }
  return byMaster
}

t.test('keySlot agrees with CLUSTER KEYSLOT, hash tags included', async t => {
  const cluster = await sharedRedisCluster()
  for (const key of ['a', 'foo', 'rt:{chat.room-1}:meta', 'x{}y', '{user1000}.following', 'é.ü', 'rt:{a}:pub']) {
    t.equal(keySlot(key), Number(await cluster.cluster(cluster.ports[0], 'keyslot', key)), key)
  }
})

t.test('one subscriber connection per shard, however many topics; every topic reaches its subscriber', async t => {
  const cluster = await sharedRedisCluster()
  const keyPrefix = prefix()
  const listener = new RecordingListener('n1')
  const node = await broker(t, cluster, keyPrefix, 'n1', listener)
  const publisher = await broker(t, cluster, keyPrefix, 'n2')
  const topics = range(1, 60).map(i => `spread.${i}`)
  for (const topic of topics) await node.subscribe(topic)
  const owners = new Set(await Promise.all(topics.map(topic => cluster.masterOf(keySlot(topic)))))
  t.equal(owners.size, 3, 'the topics are spread over all three masters')
  for (const topic of topics) {
    for (let i = 1; i <= 3; i++) t.equal((await publisher.publish({ topic, data: i })).offset, i)
  }
  await eventually('every publication delivered', () => listener.publications.length === 180)
  for (const topic of topics) t.same(listener.of(topic).map(p => p.offset), [1, 2, 3], `${topic} in order`)
  for (const port of owners) {
    const client = new Redis(port, '127.0.0.1')
    t.teardown(() => client.disconnect())
    const list = await client.client('LIST') as string
    const subscribers = list.split('\n').filter(line => line.includes(`name=${keyPrefix}sub@`) && line.includes(':n1 '))
    t.equal(subscribers.length, 1, `one subscriber connection of n1 on master ${port}`)
  }
})

t.test('server processes on a cluster: delivery on topics of every shard, registry, disconnect, presence', async t => {
  const cluster = await sharedRedisCluster()
  const env = { REDIS_CLUSTER_NODES: cluster.seeds, REDIS_PREFIX: prefix(), JWT_SECRET: SECRET, API_KEY, PRESENCE: 'true' }
  const nodes = await startCluster(t, 2, env, 'rc')
  const topics = [...(await topicPerShard(cluster, 'rc')).values()]
  t.equal(topics.length, 3)
  const token = mint({ sub: 'reader', topics: { subscribe: ['rc.>'], publish: [] } })
  const reader = await connect(t, `${nodes[0].wsUrl}?token=${token}`)
  for (const topic of topics) t.match(await reader.request({ type: 'subscribe', topic }), { type: 'ack', topic, offset: 0 })
  for (const i of range(1, 5)) {
    for (const topic of topics) {
      const published = await postJson(`${nodes[1].url}/api/publish`, { topic, data: { i } }, adminHeaders)
      t.equal(published.status, 200, `publish ${i} on ${topic}`)
      t.equal(published.body.offset, i)
    }
  }
  for (const topic of topics) {
    await eventually(`${topic} delivered`, () => reader.messages(topic).length === 5)
    t.same(reader.messages(topic).map(f => f.data.i), [1, 2, 3, 4, 5], `${topic}: in order`)
  }
  const presence = await getJson(`${nodes[1].url}/api/topics/${topics[2]}/presence`, adminHeaders)
  t.same(presence, { status: 200, body: { topic: topics[2], connections: 1, users: [{ user: 'reader', connections: 1 }] } }, 'presence seen from the other node')
  const info = await getJson(`${nodes[1].url}/api/info`, adminHeaders)
  t.same(info.body.nodes.map((node: { id: string }) => node.id), ['rc-1', 'rc-2'], 'the registry lists both nodes')
  t.equal((await postJson(`${nodes[1].url}/api/disconnect`, { user: 'reader' }, adminHeaders)).status, 200)
  t.equal((await reader.closed).code, 4003, 'the reader is closed by the other node')
  t.match(await getJson(`${nodes[0].url}/health/ready`), { status: 200, body: { status: 'ready' } })
})

t.test('a slot that migrates to another master: the topic follows, offsets go on', async t => {
  const cluster = await sharedRedisCluster()
  const keyPrefix = prefix()
  const listener = new RecordingListener('m1')
  const node = await broker(t, cluster, keyPrefix, 'm1', listener)
  const topic = 'migrating.topic'
  await node.subscribe(topic)
  for (const i of range(1, 3)) await node.publish({ topic, data: i })
  const slot = keySlot(topic)
  const from = await cluster.masterOf(slot)
  const to = cluster.ports.find(port => port !== from) as number
  await cluster.moveSlot(slot, to)
  t.equal(await cluster.masterOf(slot), to, 'the slot moved')
  // Redis unsubscribes the channel of a slot that leaves (Redis 7); the broker follows the slot map.
  await eventually('publishes work again after the move', async () => {
    try {
      await node.publish({ topic, data: 'probe' })
      return true
    } catch {
      return false
    }
  }, 10000)
  for (const i of range(5, 7)) t.equal((await node.publish({ topic, data: i })).offset, i, 'offsets go on in the same epoch')
  await eventually('everything delivered', () => listener.of(topic).length === 7, 10000)
  t.same(listener.of(topic).map(p => p.offset), range(1, 7), 'nothing lost, nothing twice')
  t.equal(new Set(listener.of(topic).map(p => p.epoch)).size, 1, 'one epoch')
})

t.test('a master that dies: its topics answer 503, the other shards keep serving; it heals when the master is back', async t => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.close())
  const server = await startServer(t, { redisClusterNodes: cluster.seeds.split(','), redisPrefix: prefix(), apiKey: API_KEY, jwtSecret: SECRET })
  const token = mint({ sub: 'reader', topics: { subscribe: ['shard.>'], publish: [] } })
  const topics = await topicPerShard(cluster, 'shard')
  const [dead, ...alive] = [...topics.keys()]
  const doomed = topics.get(dead) as string
  const reader = await connect(t, `${server.wsUrl}?token=${token}`)
  for (const topic of topics.values()) t.match(await reader.request({ type: 'subscribe', topic }), { type: 'ack', topic })
  const publish = async (topic: string, i: number): Promise<number> =>
    (await postJson(`${server.url}/api/publish`, { topic, data: { i } }, adminHeaders)).status

  for (const topic of topics.values()) t.equal(await publish(topic, 1), 200)
  await cluster.stop(dead)
  await eventually('the dead shard answers 503', async () => await publish(doomed, 2) === 503, 10000)
  for (const port of alive) t.equal(await publish(topics.get(port) as string, 2), 200, `master ${port} still serves`)
  const ready = await getJson(`${server.url}/health/ready`)
  t.same(ready, { status: 200, body: { status: 'ready', unavailableShards: [`127.0.0.1:${dead}`] } }, 'ready, naming the shard that is down')
  t.match(await metricsText(server.url), /^realtime_broker_unavailable_shards 1$/m, 'counted for alerts')
  t.match(await reader.request({ type: 'history', topic: doomed }), { type: 'error', code: 'unavailable' }, 'its history too')

  await cluster.start(dead)
  await cluster.settled()
  await eventually('the shard is back', async () => await publish(doomed, 3) === 200, 15000)
  t.same(await getJson(`${server.url}/health/ready`), { status: 200, body: { status: 'ready' } })
  t.match(await metricsText(server.url), /^realtime_broker_unavailable_shards 0$/m)
  for (const port of alive) {
    const topic = topics.get(port) as string
    t.same(reader.messages(topic).map(f => f.data.i), [1, 2], `${topic}: every publication, once`)
  }
  // The master came back empty (no persistence): a new epoch, which a fresh subscriber follows.
  const late = await connect(t, `${server.wsUrl}?token=${token}`)
  t.match(await late.request({ type: 'subscribe', topic: doomed }), { type: 'ack', topic: doomed })
  t.equal(await publish(doomed, 4), 200)
  await late.next(f => f.type === 'message' && f.topic === doomed && f.data.i === 4, 10000)
})

t.test('the HTTP rate limit counts in the cluster: two nodes share one budget per caller', async t => {
  const cluster = await sharedRedisCluster()
  const config = { redisClusterNodes: cluster.seeds.split(','), redisPrefix: prefix(), jwtSecret: SECRET, defaultPublish: ['>'], rateLimitMax: 3, rateLimitWindow: 60000 }
  const [a, b] = [await startServer(t, config), await startServer(t, config)]
  const alice = { authorization: `Bearer ${mint({ sub: 'alice' })}` }
  const statuses = []
  for (const i of range(1, 4)) statuses.push((await postJson(`${(i % 2 === 0 ? a : b).url}/api/publish`, { topic: 'rl', data: i }, alice)).status)
  t.same(statuses, [200, 200, 200, 429], 'the fourth request, on either node, is over the shared budget')
  t.equal((await postJson(`${a.url}/api/publish`, { topic: 'rl', data: 0 }, { authorization: `Bearer ${mint({ sub: 'bob' })}` })).status, 200, 'another caller has a budget of its own')
})

t.test('the whole cluster down: not ready, publishes 503; back: ready again, subscriptions deliver', async t => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.close())
  const server = await startServer(t, { redisClusterNodes: cluster.seeds.split(','), redisPrefix: prefix(), apiKey: API_KEY, jwtSecret: SECRET })
  const token = mint({ sub: 'reader', topics: { subscribe: ['all.>'], publish: [] } })
  const topics = [...(await topicPerShard(cluster, 'all')).values()]
  const reader = await connect(t, `${server.wsUrl}?token=${token}`)
  for (const topic of topics) t.match(await reader.request({ type: 'subscribe', topic }), { type: 'ack', topic })
  const publish = async (topic: string, i: number): Promise<number> =>
    (await postJson(`${server.url}/api/publish`, { topic, data: { i } }, adminHeaders)).status

  for (const port of cluster.ports) await cluster.stop(port)
  await eventually('not ready', async () => (await getJson(`${server.url}/health/ready`)).status === 503, 15000)
  t.equal(await publish(topics[0], 1), 503)
  t.equal(reader.ws.readyState, reader.ws.OPEN, 'the socket stays open')

  for (const port of cluster.ports) await cluster.start(port)
  await cluster.settled()
  await eventually('ready again', async () => (await getJson(`${server.url}/health/ready`)).status === 200, 20000)
  await eventually('publishes work again', async () => await publish(topics[0], 2) === 200, 10000)
  for (const topic of topics.slice(1)) t.equal(await publish(topic, 2), 200)
  for (const topic of topics) await reader.next(f => f.type === 'message' && f.topic === topic && f.data.i === 2, 10000)
  t.pass('every shard delivers to the subscriber that stayed connected')
})
