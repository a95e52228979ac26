// A Redis Cluster whose nodes are known by IPv6 addresses: the shard subscribers are opened from the
// addresses CLUSTER SLOTS reports (`::1`), which a redis:// URL must write in brackets. Before that, a
// subscription on such a cluster failed: `redis://::1:port` is not a URL.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { nodeUrl } from '../src/core/brokers/redis-cluster-slots.js'
import { startRedisCluster } from './fixtures/redis-cluster.js'
import { connect, postJson, startServer } from './helpers.js'

t.test('nodeUrl brackets an IPv6 host, so that the port is not read from its colons', async t => {
  t.equal(nodeUrl({ host: '::1', port: 7001 }), 'redis://[::1]:7001')
  t.equal(new URL(nodeUrl({ host: 'fd00::12', port: 7001 })).hostname, '[fd00::12]')
  t.equal(nodeUrl({ host: '10.0.0.11', port: 7000 }), 'redis://10.0.0.11:7000')
})

t.test('a cluster on ::1: subscribe, publish, deliver through the shard subscriber', async t => {
  const cluster = await startRedisCluster({ host: '::1' })
  t.teardown(() => cluster.close())
  t.match(cluster.seeds, /^\[::1\]:\d+,/)
  const server = await startServer(t, { redisClusterNodes: cluster.seeds.split(','), redisPrefix: `rt-test-${randomBytes(6).toString('hex')}:` })
  const reader = await connect(t, server.wsUrl)
  t.match(await reader.request({ type: 'subscribe', topic: 'v6.room' }), { type: 'ack', topic: 'v6.room' })
  t.match(await postJson(`${server.url}/api/publish`, { topic: 'v6.room', data: 'over IPv6' }), { status: 200, body: { offset: 1 } })
  const message = await reader.next(frame => frame.type === 'message')
  t.match(message, { topic: 'v6.room', data: 'over IPv6', offset: 1 })
})
