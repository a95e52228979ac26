// The Broker contract (src/core/broker.ts: publish/subscribe and history), run against every broker:
// the same cases for the in-memory broker and the Redis broker, so a deployment can grow from one node
// to many without clients noticing. The optional parts have suites of their own:
// broker-conformance-{presence,control,registry}.test.ts.
import t from 'tap'
import type { Broker } from '../src/core/broker.js'
import { EMPTY_EPOCH } from '../src/core/brokers/history.js'
import { encodeMessageFrame } from '../src/core/protocol.js'
import { brokerSeamCases } from './brokers.js'
import { eventually } from './fixtures/cluster.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

for (const brokerCase of brokerSeamCases) {
  t.test(`${brokerCase.name}: Broker`, async t => {
    t.test('offsets run 1..N in one epoch, delivered in order with frames identical to encodeMessageFrame', async t => {
      const { broker, listener } = await brokerCase.start(t)
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

    // Deliberate change: reads create no state, so a topic without a stream answers the
    // empty epoch, and its first publication starts a real one.
    t.test('a topic nobody published to answers the empty epoch at offset 0; reading creates nothing', async t => {
      const { broker } = await brokerCase.start(t)
      const first = await broker.history('fresh.one')
      t.equal(first.offset, 0)
      t.equal(first.epoch, EMPTY_EPOCH)
      t.same(first.publications, [])
      const again = await broker.history('fresh.one', { since: { epoch: EMPTY_EPOCH, offset: 0 } })
      t.same(again, first, 'reading again: still nothing')
      const published = await broker.publish({ topic: 'fresh.one', data: 1 })
      t.not(published.epoch, EMPTY_EPOCH, 'the first publication starts a real epoch')
      t.same(published, { epoch: published.epoch, offset: 1, repeated: false })
      await broker.publish({ topic: 'fresh.one', data: 2 })
      const fromEmpty = await broker.history('fresh.one', { since: { epoch: EMPTY_EPOCH, offset: 0 } })
      t.same(fromEmpty.publications.map(p => p.offset), [1, 2], 'since the empty position: everything from offset 1')
      t.same((await broker.history('fresh.one', { since: { epoch: EMPTY_EPOCH, offset: 0 }, limit: 1 })).publications.map(p => p.offset), [1])
      const other = await broker.publish({ topic: 'fresh.two', data: 1 })
      t.not(other.epoch, published.epoch, 'each topic has its own epoch')
    })

    t.test('history: limit, since and their combinations', async t => {
      const { broker } = await brokerCase.start(t)
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
      const { broker } = await brokerCase.start(t, { historySize: 5 })
      for (let i = 1; i <= 8; i++) await broker.publish({ topic: 'trim', data: i })
      const history = await broker.history('trim')
      t.equal(history.offset, 8)
      t.same(history.publications.map(p => p.offset), [4, 5, 6, 7, 8])
      t.same(history.publications.map(p => JSON.parse(p.frame).data), [4, 5, 6, 7, 8])
      t.same((await broker.history('trim', { since: { epoch: history.epoch, offset: 1 } })).publications.map(p => p.offset), [4, 5, 6, 7, 8],
        'a since older than what is retained gets what is retained')
    })

    t.test('HISTORY_TTL: a stream idle for longer is lost and the topic starts a new epoch', async t => {
      const { broker } = await brokerCase.start(t, { historyTtl: 1 })
      const first = await broker.publish({ topic: 'ttl', data: 1 })
      await broker.publish({ topic: 'ttl', data: 2 })
      await sleep(1300)
      const after = await broker.history('ttl')
      t.not(after.epoch, first.epoch, 'new epoch')
      t.equal(after.offset, 0)
      t.same(after.publications, [])
      t.equal(after.epoch, EMPTY_EPOCH, 'no stream: the empty epoch')
      const next = await broker.publish({ topic: 'ttl', data: 3 })
      t.not(next.epoch, first.epoch, 'a new epoch...')
      t.same(next, { epoch: next.epoch, offset: 1, repeated: false }, '...where offsets restart at 1')
    })

    t.test('a publication keeps the stream alive for another HISTORY_TTL', async t => {
      const { broker } = await brokerCase.start(t, { historyTtl: 1 })
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
      const { broker, listener } = await brokerCase.start(t, { historySize: 0 })
      await broker.subscribe('nohist')
      const positions = [await broker.publish({ topic: 'nohist', data: 1 }), await broker.publish({ topic: 'nohist', data: 2 })]
      t.same(positions.map(p => p.offset), [1, 2])
      t.equal(positions[0].epoch, positions[1].epoch)
      const history = await broker.history('nohist')
      t.same({ epoch: history.epoch, offset: history.offset, publications: history.publications }, { epoch: positions[0].epoch, offset: 2, publications: [] })
      await eventually('both delivered live', () => listener.of('nohist').length === 2)
    })

    t.test('idempotent publish returns the first result and publishes nothing new', async t => {
      const { broker, listener } = await brokerCase.start(t)
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
      const { broker, listener } = await brokerCase.start(t)
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
      const { broker, listener } = await brokerCase.start(t)
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

    t.test('up while connected', async t => {
      const { broker } = await brokerCase.start(t)
      t.equal(broker.up, true)
    })
  })
}
