// Redis broker behaviour that needs several nodes or Redis itself: brokers in one process sharing a
// prefix act as separate nodes (each has its own two connections).
import t, { type Test } from 'tap'
import { kRealtimeNode } from '../plugins/node.js'
import { buildApp } from '../src/app.js'
import { configWith } from '../src/config.js'
import type { BrokerListener, ControlMessage, NodeInfo } from '../src/core/broker.js'
import { RedisBroker, type RedisBrokerOptions } from '../src/core/brokers/redis.js'
import type { Publication } from '../src/core/protocol.js'
import { eventually, REDIS_URL, redisClient, redisPrefix } from './fixtures/cluster.js'

class Recorder implements BrokerListener {
  readonly publications: Publication[] = []
  readonly controls: ControlMessage[] = []
  readonly statuses: boolean[] = []
  constructor (readonly id: string) {}
  publication = (publication: Publication): void => { this.publications.push(publication) }
  event = (): void => {}
  describe = (): NodeInfo => ({ id: this.id, connections: 1, subscriptions: 1, topics: 1, startedAt: 1 })
  control = (message: ControlMessage): void => { this.controls.push(message) }
  status = (up: boolean): void => { this.statuses.push(up) }
  offsets (topic: string): number[] {
    return this.publications.filter(p => p.topic === topic).map(p => p.offset)
  }
}

async function node (t: Test, prefix: string, id: string, options: Partial<RedisBrokerOptions> = {}): Promise<{ broker: RedisBroker, listener: Recorder }> {
  const broker = new RedisBroker({ url: REDIS_URL, prefix, nodeId: id, historySize: 100, historyTtl: 300, ...options })
  const listener = new Recorder(id)
  await broker.start(listener)
  t.teardown(() => broker.close())
  return { broker, listener }
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

t.test('nodes agree on offsets and order under concurrent publishes', async t => {
  const prefix = redisPrefix(t)
  const nodes = await Promise.all(['a', 'b', 'c'].map(id => node(t, prefix, id)))
  for (const { broker } of nodes) await broker.subscribe('race')
  const results = await Promise.all(range(1, 300).map(i => nodes[i % 3].broker.publish({ topic: 'race', data: i })))
  t.same(results.map(r => r.offset).sort((x, y) => x - y), range(1, 300), 'each offset handed out once')
  for (const { listener } of nodes) {
    await eventually(`${listener.id} received all`, () => listener.offsets('race').length === 300)
    t.same(listener.offsets('race'), range(1, 300), `${listener.id}: in offset order`)
  }
  const frames = nodes.map(({ listener }) => listener.publications.map(p => p.frame).join('\n'))
  t.equal(frames[1], frames[0], 'b received the same bytes as a')
  t.equal(frames[2], frames[0], 'c received the same bytes as a')
})

t.test('control messages reach every node; idempotency holds across nodes', async t => {
  const prefix = redisPrefix(t)
  const a = await node(t, prefix, 'a')
  const b = await node(t, prefix, 'b')
  await a.broker.sendControl({ type: 'disconnect', user: 'u1' })
  await eventually('both nodes got it', () => a.listener.controls.length === 1 && b.listener.controls.length === 1)
  t.same(b.listener.controls, [{ type: 'disconnect', user: 'u1' }])
  const first = await a.broker.publish({ topic: 'idem', data: 1 }, { idempotencyKey: 'same' })
  const second = await b.broker.publish({ topic: 'idem', data: 2 }, { idempotencyKey: 'same' })
  t.same(second, { ...first, repeated: true }, 'the other node answers the first result, marked as a repeat')
  t.equal((await b.broker.history('idem')).offset, 1, 'published once')
  await a.broker.revoke('jti-x', Date.now() + 10_000)
  t.equal(await b.broker.isRevoked('jti-x'), true, 'revocation is shared')
})

t.test('keys and channels live under the prefix, with recognisable names', async t => {
  const prefix = redisPrefix(t)
  const { broker } = await node(t, prefix, 'n1')
  await broker.subscribe('k.t')
  await broker.publish({ topic: 'k.t', data: 1 }, { idempotencyKey: 'i' })
  await broker.addPresence('k.t', { connectionId: 'c', user: 'u', node: 'n1' })
  await broker.revoke('j', Date.now() + 10_000)
  const redis = await redisClient(t)
  const keys = (await redis.keys(`${prefix}*`)).sort()
  t.same(keys, [
    `${prefix}revoked:j`, `${prefix}{k.t}:idempotency:i`, `${prefix}{k.t}:meta`, `${prefix}{k.t}:presence`, `${prefix}{k.t}:stream`,
    `${prefix}{registry}:node-presence:n1`, `${prefix}{registry}:node:n1`, `${prefix}{registry}:nodes`
  ])
  const channels = (await redis.pubsub('CHANNELS', `${prefix}*`) as string[]).sort()
  t.same(channels, [`${prefix}control`, `${prefix}{k.t}:pub`])
  const ttl = await redis.pttl(`${prefix}{k.t}:stream`)
  t.ok(ttl > 290_000 && ttl <= 300_000, `the stream expires with HISTORY_TTL (${ttl} ms)`)
  const names = (await redis.client('LIST') as string).split('\n').filter(line => line.includes(`name=${prefix}`))
  t.equal(names.filter(line => line.includes(`name=${prefix}sub:n1 `)).length, 1, 'one subscriber connection')
  t.equal(names.filter(line => line.includes(`name=${prefix}cmd:n1 `)).length, 1, 'one command connection')
  await broker.close()
  t.same(await redis.keys(`${prefix}{registry}:node*`), [], 'a node that closes leaves the registry at once')
  t.same(await redis.hgetall(`${prefix}{k.t}:presence`), {}, '...and takes its presence along')
})

t.test('a node that dies disappears from nodes() and presence within nodeTtl', async t => {
  const prefix = redisPrefix(t)
  const fast = { heartbeatInterval: 100, nodeTtl: 500 }
  const a = await node(t, prefix, 'a', fast)
  const b = await node(t, prefix, 'b', fast)
  await b.broker.addPresence('room', { connectionId: 'cb', user: 'bob', node: 'b' })
  await a.broker.addPresence('room', { connectionId: 'ca', user: 'ann', node: 'a' })
  t.same((await a.broker.nodes()).map(n => n.id), ['a', 'b'])
  t.equal((await a.broker.presence('room')).length, 2)
  // Dies without leaving: the connections just go (as with SIGKILL).
  b.broker.commands.disconnect()
  ;(b.broker as unknown as { subscriber: { disconnect: () => void } }).subscriber.disconnect()
  // nodeTtl is 500 ms here: the bound of the wait is what is tested.
  await eventually('b is gone from nodes()', async () => (await a.broker.nodes()).length === 1, 3000)
  t.same((await a.broker.presence('room')).map(e => e.connectionId), ['ca'], 'its presence is gone too')
  const redis = await redisClient(t)
  await eventually('the sweep deleted its entries and index', async () =>
    (await redis.exists(`${prefix}{registry}:node-presence:b`)) === 0 && (await redis.hlen(`${prefix}{room}:presence`)) === 1)
  t.same(await redis.smembers(`${prefix}{registry}:nodes`), ['a'])
})

t.test('a node swept while stalled writes its presence back at its next heartbeat', async t => {
  const prefix = redisPrefix(t)
  const a = await node(t, prefix, 'a', { heartbeatInterval: 100, nodeTtl: 500 })
  await a.broker.addPresence('room', { connectionId: 'ca', user: 'ann', node: 'a' })
  const redis = await redisClient(t)
  // What another node's sweep does to a node whose key expired.
  await redis.del(`${prefix}{registry}:node:a`, `${prefix}{registry}:node-presence:a`, `${prefix}{room}:presence`)
  await eventually('presence written back', async () => (await redis.hlen(`${prefix}{room}:presence`)) === 1, 3000)
  t.same((await a.broker.presence('room')).map(e => e.connectionId), ['ca'])
})

t.test('subscribe resolves only once the subscription is active: no lost first message', async t => {
  const prefix = redisPrefix(t)
  const a = await node(t, prefix, 'a')
  const b = await node(t, prefix, 'b')
  for (let i = 1; i <= 30; i++) {
    const topic = `first.${i}`
    await a.broker.subscribe(topic)
    await b.broker.publish({ topic, data: i })
  }
  await eventually('every first message arrived', () => a.listener.publications.length === 30)
  t.same(a.listener.publications.map(p => p.offset), Array(30).fill(1))
})

t.test('a killed subscriber connection: down, then back up after filling the gap from history', async t => {
  const prefix = redisPrefix(t)
  const a = await node(t, prefix, 'a')
  const b = await node(t, prefix, 'b')
  await a.broker.subscribe('gap')
  await a.broker.subscribe('gap.quiet')
  for (let i = 1; i <= 5; i++) await b.broker.publish({ topic: 'gap', data: i })
  await eventually('first 5', () => a.listener.offsets('gap').length === 5)
  const redis = await redisClient(t)
  let publishing = true
  let published = 5
  /** How many had been published when node a went down and when it was back up. */
  const marks: number[] = []
  a.listener.status = up => { a.listener.statuses.push(up); marks.push(published) }
  const publisher = (async () => {
    while (publishing) {
      await b.broker.publish({ topic: 'gap', data: ++published })
      await new Promise(resolve => setTimeout(resolve, 2))
    }
  })()
  const list = await redis.client('LIST') as string
  const id = /id=(\d+) [^\n]*name=(\S+)/g
  const subscriberId = [...list.matchAll(id)].find(match => match[2] === `${prefix}sub:a`)?.[1]
  t.ok(subscriberId, 'the subscriber connection is named after the node')
  await redis.client('KILL', 'ID', subscriberId as string)
  // Published while node a cannot receive: only the gap fill can deliver it.
  await b.broker.publish({ topic: 'gap.quiet', data: 'during' })
  await eventually('a went down and came back', () => a.listener.statuses.length === 2, 5000)
  t.same(a.listener.statuses, [false, true])
  t.equal(a.broker.up, true)
  await new Promise(resolve => setTimeout(resolve, 100))
  publishing = false
  await publisher
  await eventually('a received every publication', () => a.listener.offsets('gap').length >= published, 5000)
  t.same(a.listener.offsets('gap'), range(1, published), `1..${published}, in order, no duplicate`)
  t.same(a.listener.offsets('gap.quiet'), [1], 'the quiet topic got its publication from history')
  t.ok(marks[1] > marks[0], `${marks[1] - marks[0]} were published while node a was down`)
})

t.test('app.close() closes both Redis connections and leaves the node registry', async t => {
  const prefix = redisPrefix(t)
  const app = await buildApp(configWith({ logLevel: 'silent', redisUrl: REDIS_URL, redisPrefix: prefix, nodeId: 'closing' }))
  const broker = app[kRealtimeNode].broker
  t.ok(broker instanceof RedisBroker, 'REDIS_URL selects the Redis broker')
  const redis = await redisClient(t)
  const ours = async (): Promise<string[]> => (await redis.client('LIST') as string).split('\n').filter(line => line.includes(`name=${prefix}`))
  t.equal((await ours()).length, 2, 'two connections: commands and subscriber')
  t.same(await redis.smembers(`${prefix}{registry}:nodes`), ['closing'])
  await app.close()
  t.equal((broker as RedisBroker).commands.status, 'end')
  await eventually('Redis saw both connections go', async () => (await ours()).length === 0)
  t.same(await redis.keys(`${prefix}*`), [], 'nothing left behind')
})
