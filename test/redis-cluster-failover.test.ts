// A Redis Cluster with replicas (3 masters, 3 replicas) losing a master: its replica takes over
// (cluster-node-timeout 1.5 s here), the broker follows the new slot map, and the topic's
// offsets go on in the same epoch, every publication delivered once and in order. The other shards
// serve throughout.
import t from 'tap'
import { Redis } from 'ioredis'
import { RedisClusterBroker } from '../src/core/brokers/redis-cluster.js'
import { keySlot } from '../src/core/brokers/redis-cluster-slots.js'
import { RecordingListener } from './brokers.js'
import { eventually } from './fixtures/cluster.js'
import { startRedisCluster } from './fixtures/redis-cluster.js'

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

t.test('a master fails over to its replica: offsets go on, nothing is lost, the other shards keep serving', async t => {
  const cluster = await startRedisCluster({ masters: 3, replicas: 1, nodeTimeoutMs: 1500 })
  t.teardown(() => cluster.close())
  const start = async (nodeId: string, listener = new RecordingListener(nodeId)): Promise<RedisClusterBroker> => {
    const broker = new RedisClusterBroker({ nodes: cluster.nodes, prefix: 'failover:', nodeId, historySize: 100, historyTtl: 300 })
    await broker.start(listener)
    t.teardown(() => broker.close())
    return broker
  }
  const listener = new RecordingListener('reader')
  const reader = await start('reader', listener)
  const writer = await start('writer')

  // One topic per master.
  const byMaster = new Map<number, string>()
  for (let n = 0; byMaster.size < 3; n++) {
    const master = await cluster.masterOf(keySlot(`fo.${n}`))
    if (!byMaster.has(master)) byMaster.set(master, `fo.${n}`)
  }
  const [dead, ...others] = [...byMaster.keys()]
  const doomed = byMaster.get(dead) as string
  for (const topic of byMaster.values()) await reader.subscribe(topic)
  for (const i of range(1, 5)) for (const topic of byMaster.values()) await writer.publish({ topic, data: i })

  // Wait until the doomed master's replica has the five publications (replication is asynchronous).
  const replica = await replicaOf(cluster.ports, dead)
  t.teardown(() => replica.disconnect())
  await eventually('the replica caught up', async () => await replica.hget(`failover:{${doomed}}:meta`, 'o') === '5', 15000)

  await cluster.stop(dead)
  for (const port of others) {
    const topic = byMaster.get(port) as string
    t.equal((await writer.publish({ topic, data: 6 })).offset, 6, `${topic}: its shard serves during the failover`)
  }
  await eventually('the replica took over: publishes on the doomed topic work again', async () => {
    try {
      await writer.publish({ topic: doomed, data: 6 })
      return true
    } catch {
      return false
    }
  }, 20000, 200)
  // The broker followed a MOVED to the promoted replica; the node the fixture asks may learn of the
  // promotion by gossip a moment later, so its view is awaited, not read once.
  await eventually('the cluster names another master for the slot', async () => await cluster.masterOf(keySlot(doomed)) !== dead, 10000, 100)
  t.not(await cluster.masterOf(keySlot(doomed)), dead, 'another master owns the slot')
  for (const i of range(7, 9)) t.equal((await writer.publish({ topic: doomed, data: i })).offset, i, 'offsets go on')

  await eventually('the reader got everything', () => listener.of(doomed).length === 9, 10000)
  t.same(listener.of(doomed).map(p => p.offset), range(1, 9), 'every offset once, in order')
  t.equal(new Set(listener.of(doomed).map(p => p.epoch)).size, 1, 'one epoch: no reset')
  t.same(listener.of(doomed).map(p => JSON.parse(p.frame).data), range(1, 9))
  await eventually('the dead master is no longer a shard', () => reader.unavailableShards.length === 0, 10000)
  t.equal(reader.up, true)
  t.same(listener.statuses, [], 'the broker never reported itself down')
})

/** A connection to the replica of the master on `masterPort`, in READONLY mode. */
async function replicaOf (ports: number[], masterPort: number): Promise<Redis> {
  for (const port of ports) {
    if (port === masterPort) continue
    const client = new Redis(port, '127.0.0.1')
    const info = await client.info('replication')
    if (info.includes('role:slave') && info.includes(`master_port:${masterPort}`)) {
      await client.call('READONLY')
      return client
    }
    client.disconnect()
  }
  throw new Error(`no replica of ${masterPort}`)
}
