// From REDIS_CLUSTER_NODES the plugin's Cluster client goes to @fastify/redis, which closes it when the
// app closes: with every master up, and with one of them down (its node connection reconnecting), when
// a plain QUIT would be refused and app.close() would fail. A private cluster: this file stops a node.
import Fastify from 'fastify'
import t from 'tap'
import { kRealtimeNode } from '../plugins/node.js'
import type { RedisClusterBroker } from '../src/core/brokers/redis-cluster.js'
import { realtime } from '../src/index.js'
import { getJson, listen, within } from './helpers.js'
import { eventually } from './fixtures/cluster.js'
import { startRedisCluster } from './fixtures/redis-cluster.js'

const cluster = await startRedisCluster()
t.teardown(() => cluster.close())

for (const down of [false, true]) {
  t.test(`app.close() ends the cluster connection${down ? ' while a master is down' : ''}`, async t => {
    const app = Fastify()
    await app.register(realtime, { logLevel: 'silent', redisClusterNodes: cluster.seeds.split(','), redisPrefix: `rt-close-${String(down)}:`, nodeId: 'n' })
    const url = await listen(t, app)
    const broker = app[kRealtimeNode].broker as RedisClusterBroker
    t.equal(broker.up, true)
    await app.realtime.publish('close.feed', 1)
    if (down) {
      await cluster.stop(cluster.ports[2])
      t.teardown(() => cluster.start(cluster.ports[2]))
      await eventually('the shard is reported down', async () => (await getJson(`${url}/health/ready`)).body.unavailableShards?.length === 1, 10000)
    }
    await within(app.close(), 5000, 'app.close()')
    t.equal(broker.commands.status, 'end', 'the Cluster client ended')
  })
}
