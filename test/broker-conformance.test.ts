// The broker contract, run against every broker: the same cases for the in-memory broker and the
// Redis broker, so a deployment can grow from one node to many without clients noticing.
import t, { type Test } from 'tap'
import type { Broker, BrokerListener, ControlMessage, NodeInfo, PresenceEntry } from '../src/core/broker.js'
import { MemoryBroker } from '../src/core/brokers/memory.js'
import { RedisBroker } from '../src/core/brokers/redis.js'
import { encodeMessageFrame, type Publication } from '../src/core/protocol.js'
import { eventually, REDIS_URL, redisPrefix } from './fixtures/cluster.js'

/** A listener that records everything the broker hands it. */
class Recorder implements BrokerListener {
  readonly publications: Publication[] = []
  readonly events: Array<{ topic: string, frame: string }> = []
  readonly controls: ControlMessage[] = []
  readonly statuses: boolean[] = []
  constructor (readonly id: string) {}
  publication = (publication: Publication): void => { this.publications.push(publication) }
  event = (topic: string, frame: string): void => { this.events.push({ topic, frame }) }
  describe = (): NodeInfo => ({ id: this.id, connections: 2, subscriptions: 3, startedAt: 1700000000000 })
  control = (message: ControlMessage): void => { this.controls.push(message) }
  status = (up: boolean): void => { this.statuses.push(up) }

  of (topic: string): Publication[] {
    return this.publications.filter(publication => publication.topic === topic)
  }
}

interface BrokerOptions { historySize?: number, historyTtl?: number }

interface Factory {
  name: string
  create: (t: Test, options?: BrokerOptions) => Promise<{ broker: Broker, listener: Recorder }>
}

const factories: Factory[] = [
  {
    name: 'memory',
    create: async (t, options = {}) => {
      const broker = new MemoryBroker({ historySize: options.historySize ?? 100, historyTtl: options.historyTtl ?? 300 })
      const listener = new Recorder('memory-node')
      await broker.start(listener)
      t.teardown(() => broker.close())
      return { broker, listener }
    }
  },
  {
    name: 'redis',
    create: async (t, options = {}) => {
      const broker = new RedisBroker({
        url: REDIS_URL,
        prefix: redisPrefix(t),
        nodeId: 'redis-node',
        historySize: options.historySize ?? 100,
        historyTtl: options.historyTtl ?? 300
      })
      const listener = new Recorder('redis-node')
      await broker.start(listener)
      t.teardown(() => broker.close())
      return { broker, listener }
    }
  }
]

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

for (const factory of factories) {
  t.test(`${factory.name} broker`, async t => {
    t.test('offsets run 1..N in one epoch, delivered in order with frames identical to encodeMessageFrame', async t => {
      const { broker, listener } = await factory.create(t)
      await broker.subscribe('a.b')
      const positions = []
      for (let i = 1; i <= 20; i++) positions.push(await broker.publish({ topic: 'a.b', data: { i, text: 'é"\\\n' }, from: i % 2 === 0 ? 'alice' : undefined }))
      t.same(positions.map(p => p.offset), Array.from({ length: 20 }, (_, i) => i + 1))
      t.equal(new Set(positions.map(p => p.epoch)).size, 1, 'one epoch')
      await eventually('20 publications delivered', () => listener.of('a.b').length === 20)
      const delivered = listener.of('a.b')
      t.same(delivered.map(p => p.offset), positions.map(p => p.offset))
      for (const [i, publication] of delivered.entries()) {
        const data = { i: i + 1, text: 'é"\\\n' }
        const from = (i + 1) % 2 === 0 ? 'alice' : undefined
        t.equal(publication.frame, encodeMessageFrame('a.b', JSON.stringify(data), publication, publication.ts, from), `frame ${i + 1}`)
        t.same(JSON.parse(publication.frame), { type: 'message', topic: 'a.b', epoch: positions[0].epoch, offset: i + 1, ts: publication.ts, ...(from === undefined ? {} : { from }), data })
      }
      const history = await broker.history('a.b')
      t.same(history.publications.map(p => p.frame), delivered.map(p => p.frame), 'history holds the same bytes')
    })

    t.test('a topic nobody published to gets a fresh epoch at offset 0, kept until it is lost', async t => {
      const { broker } = await factory.create(t)
      const first = await broker.history('fresh.one')
      t.equal(first.offset, 0)
      t.type(first.epoch, 'string')
      t.ok(first.epoch.length > 0)
      t.same(first.publications, [])
      const again = await broker.history('fresh.one')
      t.equal(again.epoch, first.epoch, 'reading does not change the epoch')
      const published = await broker.publish({ topic: 'fresh.one', data: 1 })
      t.same(published, { epoch: first.epoch, offset: 1, repeated: false }, 'the first publication continues that epoch')
      const other = await broker.history('fresh.two')
      t.not(other.epoch, first.epoch, 'each topic has its own epoch')
    })

    t.test('history: limit, since and their combinations', async t => {
      const { broker } = await factory.create(t)
      for (let i = 1; i <= 10; i++) await broker.publish({ topic: 'h', data: i })
      const all = await broker.history('h')
      const { epoch } = all
      const offsets = async (query: Parameters<Broker['history']>[1]): Promise<number[]> =>
        (await broker.history('h', query)).publications.map(p => p.offset)
      t.same(all.publications.map(p => p.offset), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'no query: everything retained')
      t.equal(all.offset, 10)
      t.same(await offsets({ limit: 3 }), [8, 9, 10], 'limit alone: the newest, oldest first')
      t.same(await offsets({ limit: 0 }), [], 'limit 0: none')
      t.same(await offsets({ since: { epoch, offset: 4 } }), [5, 6, 7, 8, 9, 10], 'since: those after it')
      t.same(await offsets({ since: { epoch, offset: 4 }, limit: 2 }), [5, 6], 'since + limit: the oldest after it')
      t.same(await offsets({ since: { epoch, offset: 10 } }), [], 'since the top: none')
      t.same(await offsets({ since: { epoch, offset: 0 } }), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'since 0: all')
      t.same(await offsets({ since: { epoch: 'other', offset: 4 }, limit: 2 }), [9, 10], 'since of another epoch is ignored')
      for (const publication of all.publications) t.match(publication, { topic: 'h', epoch })
    })

    t.test('HISTORY_SIZE keeps only the newest publications', async t => {
      const { broker } = await factory.create(t, { historySize: 5 })
      for (let i = 1; i <= 8; i++) await broker.publish({ topic: 'trim', data: i })
      const history = await broker.history('trim')
      t.equal(history.offset, 8)
      t.same(history.publications.map(p => p.offset), [4, 5, 6, 7, 8])
      t.same(history.publications.map(p => JSON.parse(p.frame).data), [4, 5, 6, 7, 8])
      t.same((await broker.history('trim', { since: { epoch: history.epoch, offset: 1 } })).publications.map(p => p.offset), [4, 5, 6, 7, 8],
        'a since older than what is retained gets what is retained')
    })

    t.test('HISTORY_TTL: a stream idle for longer is lost and the topic starts a new epoch', async t => {
      const { broker } = await factory.create(t, { historyTtl: 1 })
      const first = await broker.publish({ topic: 'ttl', data: 1 })
      await broker.publish({ topic: 'ttl', data: 2 })
      await sleep(1300)
      const after = await broker.history('ttl')
      t.not(after.epoch, first.epoch, 'new epoch')
      t.equal(after.offset, 0)
      t.same(after.publications, [])
      t.same(await broker.publish({ topic: 'ttl', data: 3 }), { epoch: after.epoch, offset: 1, repeated: false }, 'offsets restart at 1')
    })

    t.test('a publication keeps the stream alive for another HISTORY_TTL', async t => {
      const { broker } = await factory.create(t, { historyTtl: 1 })
      const first = await broker.publish({ topic: 'alive', data: 1 })
      for (let i = 0; i < 3; i++) {
        await sleep(600)
        await broker.publish({ topic: 'alive', data: i })
      }
      const history = await broker.history('alive')
      t.equal(history.epoch, first.epoch, 'same epoch after 1.8 s of regular publications')
      t.equal(history.offset, 4)
    })

    t.test('HISTORY_SIZE=0: no history, but offsets and epochs still', async t => {
      const { broker, listener } = await factory.create(t, { historySize: 0 })
      await broker.subscribe('nohist')
      const positions = [await broker.publish({ topic: 'nohist', data: 1 }), await broker.publish({ topic: 'nohist', data: 2 })]
      t.same(positions.map(p => p.offset), [1, 2])
      t.equal(positions[0].epoch, positions[1].epoch)
      const history = await broker.history('nohist')
      t.same({ epoch: history.epoch, offset: history.offset, publications: history.publications }, { epoch: positions[0].epoch, offset: 2, publications: [] })
      await eventually('both delivered live', () => listener.of('nohist').length === 2)
    })

    t.test('idempotent publish returns the first result and publishes nothing new', async t => {
      const { broker, listener } = await factory.create(t)
      await broker.subscribe('idem')
      const first = await broker.publish({ topic: 'idem', data: 'a' }, { idempotencyKey: 'k1' })
      const repeat = await broker.publish({ topic: 'idem', data: 'b' }, { idempotencyKey: 'k1' })
      t.same(repeat, { ...first, repeated: true }, 'the same position, marked as a repeat')
      t.equal(first.repeated, false)
      const other = await broker.publish({ topic: 'idem', data: 'c' }, { idempotencyKey: 'k2' })
      t.equal(other.offset, first.offset + 1, 'another key publishes')
      const short = await broker.publish({ topic: 'idem', data: 'd' }, { idempotencyKey: 'k3', idempotencyTtlMs: 150 })
      await sleep(300)
      const afterExpiry = await broker.publish({ topic: 'idem', data: 'e' }, { idempotencyKey: 'k3', idempotencyTtlMs: 150 })
      t.equal(afterExpiry.offset, short.offset + 1, 'an expired key publishes again')
      await eventually('4 delivered', () => listener.of('idem').length === 4)
      t.same(listener.of('idem').map(p => JSON.parse(p.frame).data), ['a', 'c', 'd', 'e'])
      t.same((await broker.history('idem')).publications.map(p => JSON.parse(p.frame).data), ['a', 'c', 'd', 'e'])
    })

    t.test('publications and events reach subscribed topics only, until unsubscribed', async t => {
      const { broker, listener } = await factory.create(t)
      await broker.subscribe('sub.yes')
      await broker.subscribe('sub.barrier')
      await broker.publish({ topic: 'sub.no', data: 1 })
      await broker.publishEvent('sub.no', '{"type":"join","topic":"sub.no"}')
      await broker.publishEvent('sub.yes', '{"type":"join","topic":"sub.yes","user":"u","connectionId":"c"}')
      await broker.publish({ topic: 'sub.yes', data: 2 })
      await broker.publish({ topic: 'sub.barrier', data: 'first' })
      await eventually('barrier delivered', () => listener.of('sub.barrier').length === 1)
      t.same(listener.events, [{ topic: 'sub.yes', frame: '{"type":"join","topic":"sub.yes","user":"u","connectionId":"c"}' }], 'the event, as sent')
      t.same(listener.of('sub.no'), [], 'nothing from a topic not subscribed')
      t.equal(listener.of('sub.yes').length, 1)
      t.notOk('offset' in listener.events[0], 'events carry no offset')
      await broker.unsubscribe('sub.yes')
      await broker.publish({ topic: 'sub.yes', data: 3 })
      await broker.publishEvent('sub.yes', '{"type":"leave"}')
      await broker.publish({ topic: 'sub.barrier', data: 'second' })
      await eventually('second barrier delivered', () => listener.of('sub.barrier').length === 2)
      t.equal(listener.of('sub.yes').length, 1, 'nothing after unsubscribe')
      t.equal(listener.events.length, 1)
    })

    t.test('many subscribe/unsubscribe cycles leave the topic working', async t => {
      const { broker, listener } = await factory.create(t)
      for (let i = 0; i < 50; i++) {
        await broker.subscribe('cycle')
        await broker.unsubscribe('cycle')
      }
      await broker.subscribe('cycle')
      await broker.publish({ topic: 'cycle', data: 'x' })
      await eventually('delivered once', () => listener.of('cycle').length === 1)
      await sleep(50)
      t.equal(listener.of('cycle').length, 1, 'exactly once')
    })

    t.test('control messages reach the listener', async t => {
      const { broker, listener } = await factory.create(t)
      await broker.sendControl({ type: 'disconnect', user: 'bob' })
      await broker.sendControl({ type: 'revoke', jti: 'j-1' })
      await eventually('both controls', () => listener.controls.length === 2)
      t.same(listener.controls, [{ type: 'disconnect', user: 'bob' }, { type: 'revoke', jti: 'j-1' }])
    })

    t.test('revoke / isRevoked, until the given time', async t => {
      const { broker } = await factory.create(t)
      t.equal(await broker.isRevoked('never'), false)
      await broker.revoke('long', Date.now() + 60_000)
      t.equal(await broker.isRevoked('long'), true)
      await broker.revoke('short', Date.now() + 200)
      t.equal(await broker.isRevoked('short'), true)
      await sleep(350)
      t.equal(await broker.isRevoked('short'), false, 'expired')
      await broker.revoke('past', Date.now() - 1000)
      t.equal(await broker.isRevoked('past'), false, 'a revocation that already ended')
    })

    t.test('presence: add, list, remove', async t => {
      const { broker } = await factory.create(t)
      const byId = (entries: PresenceEntry[]): PresenceEntry[] => [...entries].sort((a, b) => a.connectionId.localeCompare(b.connectionId))
      const nodeId = factory.name === 'memory' ? 'memory-node' : 'redis-node'
      const alice: PresenceEntry = { connectionId: 'c1', user: 'alice', node: nodeId }
      const anonymous: PresenceEntry = { connectionId: 'c2', user: null, node: nodeId }
      t.same(await broker.presence('room'), [], 'empty at first')
      await broker.addPresence('room', alice)
      await broker.addPresence('room', anonymous)
      await broker.addPresence('other', { ...alice, connectionId: 'c3' })
      t.same(byId(await broker.presence('room')), [alice, anonymous])
      await broker.removePresence('room', 'c1')
      t.same(await broker.presence('room'), [anonymous])
      await broker.removePresence('room', 'unknown')
      await broker.removePresence('room', 'c2')
      t.same(await broker.presence('room'), [], 'empty again')
      t.same(await broker.presence('other'), [{ ...alice, connectionId: 'c3' }], 'other topics untouched')
    })

    t.test('nodes() lists this node with its figures', async t => {
      const { broker, listener } = await factory.create(t)
      t.same(await broker.nodes(), [listener.describe()])
      t.equal(broker.up, true)
    })
  })
}
