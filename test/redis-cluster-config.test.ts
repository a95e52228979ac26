// REDIS_CLUSTER_NODES: a list of host:port seed nodes, checked at start with a ConfigError that names
// the variable and the bad entry; set, it selects the Redis Cluster broker over REDIS_URL.
import t from 'tap'
import { createBroker } from '../plugins/broadcast.js'
import { ConfigError, configWith, loadConfig } from '../src/config.js'
import { RedisClusterBroker } from '../src/core/brokers/redis-cluster.js'

t.test('good lists are read as host:port entries', async t => {
  t.same(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis-b.internal:7001,[::1]:7002' }).redisClusterNodes,
    ['10.0.0.1:7000', 'redis-b.internal:7001', '[::1]:7002'])
  t.equal(loadConfig({ REDIS_CLUSTER_NODES: '' }).redisClusterNodes, undefined, 'blank: unset')
  t.same(configWith({ redisClusterNodes: ['127.0.0.1:7000'] }).redisClusterNodes, ['127.0.0.1:7000'])
})

t.test('a bad list is a ConfigError naming REDIS_CLUSTER_NODES and the entry', async t => {
  for (const [value, shown] of [
    ['127.0.0.1', '"127.0.0.1"'], ['127.0.0.1:0', '"127.0.0.1:0"'], ['host:70000', '"host:70000"'],
    ['a:1,b', '"b"'], ['redis://a:7000', '"redis://a:7000"'], [',', '[]']
  ]) {
    t.throws(() => loadConfig({ REDIS_CLUSTER_NODES: value }), {
      name: 'ConfigError', variable: 'REDIS_CLUSTER_NODES', message: new RegExp(`REDIS_CLUSTER_NODES must be a comma-separated list of host:port, got ${shown.replace(/[[\]]/g, '\\$&')}`)
    }, value)
  }
  t.throws(() => configWith({ redisClusterNodes: [] as string[] }), ConfigError, 'an empty list in code')
})

t.test('set, it selects the cluster broker, even with REDIS_URL set', async t => {
  const broker = createBroker(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_CLUSTER_NODES: '127.0.0.1:7000,[::1]:7001' }))
  t.type(broker, RedisClusterBroker)
  t.match((broker as RedisClusterBroker).unreachableReason, /127\.0\.0\.1:7000,::1:7001 \(REDIS_CLUSTER_NODES\)/)
  await broker.close()
})
