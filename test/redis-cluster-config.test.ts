// REDIS_CLUSTER_NODES: a list of seed nodes, `host:port` or redis[s]:// URLs carrying the cluster's
// credentials, checked at start with a ConfigError that names the variable and the bad entry (never its
// password); set, it selects the Redis Cluster broker over REDIS_URL.
import t from 'tap'
import { createBroker } from '../plugins/node.js'
import { ConfigError, configWith, loadConfig } from '../src/config.js'
import { parseClusterSeeds, redactCredentials, redactUrl } from '../src/core/brokers/redis-client.js'
import { RedisClusterBroker } from '../src/core/brokers/redis-cluster.js'

const fail = (message: string): never => { throw new Error(message) }
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
const FORMS = escape('must be a comma-separated list of host:port or redis[s]://[[username]:password@]host:port (no path, not even /)')

t.test('good lists are read as host:port entries', async t => {
  t.same(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis-b.internal:7001,[::1]:7002' }).redisClusterNodes,
    ['10.0.0.1:7000', 'redis-b.internal:7001', '[::1]:7002'])
  t.equal(loadConfig({ REDIS_CLUSTER_NODES: '' }).redisClusterNodes, undefined, 'blank: unset')
  t.same(configWith({ redisClusterNodes: ['127.0.0.1:7000'] }).redisClusterNodes, ['127.0.0.1:7000'])
})

t.test('URL entries: credentials and TLS for every node, bare entries taking them', async t => {
  const entries = ['rediss://app:s%40cret@10.0.0.1:7000', '10.0.0.2:7000', 'rediss://app:s%40cret@[::1]:7002']
  t.same(loadConfig({ REDIS_CLUSTER_NODES: entries.join(',') }).redisClusterNodes, entries, 'the config keeps the entries')
  t.same(parseClusterSeeds(entries, fail), {
    nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7000 }, { host: '::1', port: 7002 }],
    username: 'app',
    password: 's@cret',
    tls: true
  }, 'username, %-decoded password, TLS; IPv6 without brackets')
  t.same(parseClusterSeeds(['redis://:pw@a:1', 'b:2'], fail), { nodes: [{ host: 'a', port: 1 }, { host: 'b', port: 2 }], username: undefined, password: 'pw', tls: false }, 'a password alone')
  t.same(parseClusterSeeds(['rediss://a:1'], fail), { nodes: [{ host: 'a', port: 1 }], username: undefined, password: undefined, tls: true }, 'TLS alone')
  t.same(parseClusterSeeds(['a:1', { host: 'b_1', port: 2 }], fail).nodes, [{ host: 'a', port: 1 }, { host: 'b_1', port: 2 }], 'addresses from code as they are')
})

t.test('a bad list is a ConfigError naming REDIS_CLUSTER_NODES and the entry, never its password', async t => {
  for (const [value, shown] of [
    ['127.0.0.1', '"127.0.0.1"'], ['127.0.0.1:0', '"127.0.0.1:0"'], ['host:70000', '"host:70000"'],
    ['a:1,b', '"b"'], [',', '[]'],
    ['redis://a', '"redis://a"'], ['redis://a:0', '"redis://a:0"'], ['rediss://a:70000', '"rediss://a:70000"'],
    ['redis://:7000', '"redis://:7000"'], ['redis://a:7000/', '"redis://a:7000/"'], ['redis://a:7000/0', '"redis://a:7000/0"'],
    ['redis://a:7000?tls=true', '"redis://a:7000?tls=true"'], ['redis://a:7000#x', '"redis://a:7000#x"'],
    ['redis://user@a:7000', '"redis://***@a:7000"'], ['redis://:top%zzsecret@a:7000', '"redis://:***@a:7000"'],
    ['redis://u:top/secret@a:7000', '"redis://u:***@a:7000"'], ['http://a:7000', '"http://a:7000"']
  ]) {
    t.throws(() => loadConfig({ REDIS_CLUSTER_NODES: value }), {
      name: 'ConfigError', variable: 'REDIS_CLUSTER_NODES', message: new RegExp(`REDIS_CLUSTER_NODES ${FORMS}, got ${escape(shown)}$`)
    }, value)
  }
  t.throws(() => configWith({ redisClusterNodes: [] as string[] }), ConfigError, 'an empty list in code')
  t.throws(() => configWith({ redisClusterNodes: 'a:1' as unknown as string[] }), { name: 'ConfigError', message: /must be a comma-separated list of host:port, got "a:1"/ }, 'not a list')
})

t.test('URL entries that disagree are refused, naming what differs and never the password', async t => {
  for (const [value, part, shown] of [
    ['redis://:pw@a:1,rediss://:pw@b:2', 'scheme', '"redis://:***@a:1" and "rediss://:***@b:2"'],
    ['redis://x:pw@a:1,redis://y:pw@b:2', 'username', '"redis://x:***@a:1" and "redis://y:***@b:2"'],
    ['redis://:one-secret@a:1,c:3,redis://:other-secret@b:2', 'password', '"redis://:***@a:1" and "redis://:***@b:2"'],
    ['redis://:pw@a:1,redis://b:2', 'password', '"redis://:***@a:1" and "redis://b:2"']
  ]) {
    t.throws(() => loadConfig({ REDIS_CLUSTER_NODES: value }), {
      name: 'ConfigError', message: new RegExp(`REDIS_CLUSTER_NODES entries must agree on the ${part}: ${escape(shown)} do not$`)
    }, value)
  }
})

t.test('redactCredentials hides everything between :// and the last @ but the user name', async t => {
  t.equal(redactCredentials('a:1'), 'a:1')
  t.equal(redactCredentials('redis://a:1'), 'redis://a:1')
  t.equal(redactCredentials('redis://app:p@ss:w@a:1'), 'redis://app:***@a:1')
  t.equal(redactCredentials('redis://token@a:1'), 'redis://***@a:1')
  t.equal(redactCredentials('user@a:1'), 'user@a:1', 'no scheme: not a URL, nothing to hide')
})

t.test('redactUrl (REDIS_URL, MQTT_URL) never shows a password, also one the URL parser misreads', async t => {
  t.equal(redactUrl('redis://:hunter2@h:6379'), 'redis://:***@h:6379')
  t.equal(redactUrl('redis://h:6379/0'), 'redis://h:6379/0')
  t.equal(redactUrl('mqtt://bridge:pw@h:1883'), 'mqtt://bridge:***@h:1883')
  t.equal(redactUrl('redis://u:12/secret@h:6379'), 'redis://u:***@h:6379', 'an unescaped / ends the host: "u:12" read as host and port')
  t.equal(redactUrl('redis://u:12?x=secret@h:6379'), 'redis://u:***@h:6379', 'an unescaped ? makes the rest a query')
  t.equal(redactUrl('not a url'), 'the configured REDIS_URL')
})

t.test('set, it selects the cluster broker, even with REDIS_URL set', async t => {
  const broker = createBroker(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_CLUSTER_NODES: '127.0.0.1:7000,[::1]:7001' }))
  t.type(broker, RedisClusterBroker)
  t.match((broker as RedisClusterBroker).unreachableReason, /127\.0\.0\.1:7000,::1:7001 \(REDIS_CLUSTER_NODES\)/)
  await broker.close()
})

t.test('the broker names its seeds without the credentials', async t => {
  const config = loadConfig({ REDIS_CLUSTER_NODES: 'rediss://app:hidden-secret@127.0.0.1:7000,[::1]:7001' })
  const broker = createBroker(config) as RedisClusterBroker
  t.match(broker.unreachableReason, /^Redis Cluster at 127\.0\.0\.1:7000,::1:7001 \(REDIS_CLUSTER_NODES\): /)
  t.notMatch(broker.unreachableReason, /hidden-secret/)
  await broker.close()
  const direct = new RedisClusterBroker({ nodes: ['redis://:pw@127.0.0.1:7000'], prefix: 'rt-unused:', nodeId: 'n', historySize: 10, historyTtl: 60 })
  t.match(direct.unreachableReason, /^Redis Cluster at 127\.0\.0\.1:7000 /, 'entries given in code as text')
  await direct.close()
  t.throws(() => new RedisClusterBroker({ nodes: ['redis://:pw@a'], prefix: 'rt-unused:', nodeId: 'n', historySize: 10, historyTtl: 60 }),
    { message: /^RedisClusterBroker nodes must be .*, got "redis:\/\/:\*\*\*@a"$/ })
})
