// The Redis brokers as the package exports them (src/redis-brokers.ts): declarations written without
// ioredis, which must stay those of the classes behind them (src/core/brokers/). A field added to,
// removed from or retyped in one of the classes' options fails here until the exported one follows.
import { Redis } from 'ioredis'
import { describe, expect, test } from 'tstyche'
import { RedisClusterBroker as RedisClusterBrokerClass } from '../src/core/brokers/redis-cluster.js'
import { RedisBroker as RedisBrokerClass } from '../src/core/brokers/redis.js'
import {
  MemoryBroker, RedisBroker, RedisClusterBroker, realtime,
  type Broker, type RedisBrokerOptions, type RedisClientLike, type RedisClusterBrokerOptions
} from '../src/index.js'
import Fastify from 'fastify'

const settings = { prefix: 'rt:', nodeId: 'n1', historySize: 10, historyTtl: 60 }

describe('the exported Redis brokers', () => {
  test('take exactly the options of the classes', () => {
    expect<RedisBrokerOptions>().type.toBe<ConstructorParameters<typeof RedisBrokerClass>[0]>()
    expect<RedisClusterBrokerOptions>().type.toBe<ConstructorParameters<typeof RedisClusterBrokerClass>[0]>()
  })

  test('are constructed from a URL, seed nodes or an ioredis client', () => {
    expect(new RedisBroker({ ...settings, url: 'redis://127.0.0.1:6379' })).type.toBe<RedisBroker>()
    expect(RedisBroker).type.toBeConstructableWith({ ...settings, client: new Redis({ lazyConnect: true }) })
    expect(RedisClusterBroker).type.toBeConstructableWith({ ...settings, nodes: ['127.0.0.1:7000', { host: '127.0.0.1', port: 7001 }] })
    expect(RedisBroker).type.not.toBeConstructableWith({ url: 'redis://127.0.0.1:6379' })
    expect(RedisBroker).type.not.toBeConstructableWith({ ...settings, client: {} })
    expect<RedisClientLike>().type.toBeAssignableFrom(new Redis({ lazyConnect: true }))
  })

  test('are brokers for the `broker` option, and classes at run time', () => {
    const broker = new RedisBroker({ ...settings, url: 'redis://127.0.0.1:6379' })
    expect<Broker>().type.toBeAssignableFrom(broker)
    expect(Fastify().register).type.toBeCallableWith(realtime, { broker })
    expect(new RedisClusterBroker({ ...settings, nodes: ['127.0.0.1:7000'] }).unavailableShards).type.toBe<string[]>()
    const any: Broker = new MemoryBroker({ historySize: 1, historyTtl: 1 })
    if (any instanceof RedisBroker) expect(any).type.toBe<RedisBroker>()
  })
})
