// Types of the Fastify plugin as an embedding app sees them (src/index.ts): the options of
// app.register(realtime, …) and the `app.realtime` decorator.
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { describe, expect, test } from 'tstyche'
import {
  MemoryBroker, realtime,
  type Broker, type HistoryResult, type NodesInfo, type PublishResult, type RealtimeApi, type RealtimeOptions, type TopicPresence
} from '../src/index.js'

const app = Fastify()

describe('app.register(realtime, options)', () => {
  test('takes the config fields (camelCase) and prefix, broker, metricsRoutes', () => {
    expect(app.register).type.toBeCallableWith(realtime)
    expect(app.register).type.toBeCallableWith(realtime, { prefix: '/realtime', jwtSecret: 'secret', historySize: 50 })
    expect(app.register).type.toBeCallableWith(realtime, { presence: true, joinLeave: true, defaultSubscribe: ['public.>'] })
    expect(app.register).type.toBeCallableWith(realtime, { broker: new MemoryBroker({ historySize: 10, historyTtl: 60 }) })
    expect(app.register).type.toBeCallableWith(realtime, { metricsRoutes: 'all' })
  })

  test('refuses options of the wrong type', () => {
    expect(app.register).type.not.toBeCallableWith(realtime, { historySize: '50' })
    expect(app.register).type.not.toBeCallableWith(realtime, { presence: 'yes' })
    expect(app.register).type.not.toBeCallableWith(realtime, { defaultSubscribe: 'public.>' })
    expect(app.register).type.not.toBeCallableWith(realtime, { metricsRoutes: 'mine' })
    expect(app.register).type.not.toBeCallableWith(realtime, { broker: {} })
  })

  test('refuses unknown options, also next to known ones', () => {
    expect(app.register).type.not.toBeCallableWith(realtime, { histroySize: 50 })
    expect(app.register).type.not.toBeCallableWith(realtime, { prefix: '/rt', histroySize: 50 })
    expect(app.register).type.not.toBeCallableWith(realtime, { historySize: 50, HISTORY_SIZE: 50 })
  })

  test('RealtimeOptions on its own', () => {
    expect<RealtimeOptions>().type.toBeAssignableFrom({})
    expect<RealtimeOptions>().type.toBeAssignableFrom({ prefix: '/rt', maxPayload: 1024, logLevel: 'warn' as const })
    expect<RealtimeOptions>().type.not.toBeAssignableFrom({ maxPayload: '1kb' })
    expect<RealtimeOptions>().type.not.toBeAssignableFrom({ logLevel: 'loud' as const })
    expect<RealtimeOptions>().type.not.toBeAssignableFrom({ prefix: '/rt', jwtSecrets: 'typo' })
    expect<RealtimeOptions['prefix']>().type.toBe<string | undefined>()
  })
})

describe('app.realtime', () => {
  test('is the RealtimeApi on every instance once the plugin is imported, not any', () => {
    expect(app.realtime).type.not.toBe<any>()
    expect(app.realtime).type.toBe<RealtimeApi<FastifyRequest>>()
    expect<FastifyInstance>().type.toHaveProperty('realtime')
  })

  test('has exactly the eight calls and the two extensions: nothing of the node behind it (hub, broker, stats, config)', () => {
    expect<keyof RealtimeApi>().type.toBe<'publish' | 'outbox' | 'broadcast' | 'history' | 'presence' | 'disconnect' | 'revoke' | 'info' | 'addHook' | 'rpc'>()
  })

  test('addHook: the four names, each with its context; onConnect gets the Fastify request', () => {
    app.realtime.addHook('onConnect', ctx => {
      expect(ctx.request).type.toBe<FastifyRequest>()
      expect(ctx.connectionId).type.toBe<string>()
    })
    app.realtime.addHook('onSubscribe', ctx => { expect(ctx.connectionId).type.toBe<string | undefined>() })
    app.realtime.addHook('onPublish', ctx => {
      expect(ctx.source).type.toBe<'ws' | 'http'>()
      return { data: 1 }
    })
    app.realtime.addHook('onDisconnect', ctx => { expect(ctx.code).type.toBe<number>() })
    expect(app.realtime.addHook).type.not.toBeCallableWith('onMessage', () => {})
    expect(app.realtime.addHook).type.not.toBeCallableWith('onPublish', () => ({ nope: 1 }))
  })

  test('rpc(name, [options], handler)', () => {
    expect(app.realtime.rpc).type.toBeCallableWith('orders.create', () => 1)
    expect(app.realtime.rpc).type.toBeCallableWith('orders.create', { schema: { type: 'object' } }, async () => ({ id: 1 }))
    expect(app.realtime.rpc).type.not.toBeCallableWith('orders.create', { schema: {} })
  })

  test('is typed after app.register(realtime), in the app and in child plugins', async () => {
    const host = Fastify()
    await host.register(realtime, { prefix: '/realtime' })
    expect(host.realtime).type.not.toBe<any>()
    expect(host.realtime.publish('news', 1)).type.toBe<Promise<PublishResult>>()
    await host.register(async child => {
      expect(child.realtime.publish('news', 1)).type.toBe<Promise<PublishResult>>()
    })
  })

  test('publish(topic, data) resolves to {topic, epoch, offset}', () => {
    expect(app.realtime.publish('user.42.orders', { status: 'created' })).type.toBe<Promise<PublishResult>>()
    expect<PublishResult>().type.toBe<{ topic: string, epoch: string, offset: number }>()
    expect(app.realtime.publish).type.toBeCallableWith('news', null)
  })

  test('publish refuses a topic that is not a string, and a missing data', () => {
    expect(app.realtime.publish).type.not.toBeCallableWith(42, {})
    expect(app.realtime.publish).type.not.toBeCallableWith(['news'], {})
    expect(app.realtime.publish).type.not.toBeCallableWith('news')
    expect(() => app.realtime.publish()).type.toRaiseError(2554)
  })

  test('publish takes one options object: idempotencyKey, nothing positional, nothing internal', () => {
    expect(app.realtime.publish).type.toBeCallableWith('news', 1, { idempotencyKey: 'order-42' })
    expect(app.realtime.publish).type.toBeCallableWith('news', 1, {})
    expect(app.realtime.publish).type.not.toBeCallableWith('news', 1, 'http')
    expect(app.realtime.publish).type.not.toBeCallableWith('news', 1, 'api', undefined, { idempotencyKey: 'k' })
    expect(app.realtime.publish).type.not.toBeCallableWith('news', 1, { idempotencyKey: 42 })
    expect(app.realtime.publish).type.not.toBeCallableWith('news', 1, { source: 'ws' })
    expect(app.realtime.publish).type.not.toBeCallableWith('news', 1, { from: 'alice' })
  })

  test('broadcast(topics, data) resolves to one PublishResult per topic', () => {
    expect(app.realtime.broadcast(['a', 'b'], { n: 1 })).type.toBe<Promise<PublishResult[]>>()
    expect(app.realtime.broadcast).type.not.toBeCallableWith('a', 1)
    expect(app.realtime.broadcast).type.not.toBeCallableWith(['a'])
  })

  test('history(topic, query) and presence(topic)', () => {
    expect(app.realtime.history('news')).type.toBe<Promise<HistoryResult>>()
    expect(app.realtime.history).type.toBeCallableWith('news', { since: { epoch: 'E', offset: 3 }, limit: 10 })
    expect(app.realtime.history).type.not.toBeCallableWith('news', { limit: '10' })
    expect(app.realtime.history).type.not.toBeCallableWith('news', { since: 'E:3' })
    expect(app.realtime.history).type.not.toBeCallableWith('news', { sinse: { epoch: 'E', offset: 3 } })
    expect(app.realtime.presence('room')).type.toBe<Promise<TopicPresence>>()
    expect<TopicPresence>().type.toBe<{ topic: string, connections: number, users: Array<{ user: string, connections: number }> }>()
  })

  test('disconnect(user), revoke(jti, { expiresAt }) and info()', () => {
    expect(app.realtime.disconnect('alice')).type.toBe<Promise<void>>()
    expect(app.realtime.disconnect).type.not.toBeCallableWith()
    expect(app.realtime.disconnect).type.not.toBeCallableWith({ user: 'alice' })
    expect(app.realtime.revoke('jti-1')).type.toBe<Promise<void>>()
    expect(app.realtime.revoke).type.toBeCallableWith('jti-1', { expiresAt: Date.now() + 60_000 })
    expect(app.realtime.revoke).type.not.toBeCallableWith('jti-1', Date.now())
    expect(app.realtime.revoke).type.not.toBeCallableWith('jti-1', { until: Date.now() })
    expect(app.realtime.info()).type.toBe<Promise<NodesInfo>>()
    expect<NodesInfo['node']>().type.toBe<string>()
  })
})

describe('the broker option', () => {
  test('takes any Broker: only pub/sub and history are required, the other parts are optional', () => {
    const minimal = {
      up: true,
      start: async () => {},
      close: async () => {},
      publish: async () => ({ epoch: 'E', offset: 1, repeated: false }),
      publishEvent: async () => {},
      subscribe: async () => {},
      unsubscribe: async () => {},
      history: async () => ({ epoch: 'E', offset: 0, publications: [] })
    }
    expect<Broker>().type.toBeAssignableFrom(minimal)
    expect<Broker>().type.toBeAssignableFrom(new MemoryBroker({ historySize: 10, historyTtl: 60 }))
    expect(app.register).type.toBeCallableWith(realtime, { broker: minimal })
    const { history: _history, ...withoutHistory } = minimal
    expect<Broker>().type.not.toBeAssignableFrom(withoutHistory)
  })
})
