// Idempotent publish: the same `idempotencyKey` (on the same topic) within 5 minutes answers the first
// result and publishes nothing, on every broker and, with Redis, across nodes.
import t from 'tap'
import { kRealtimeNode } from '../plugins/node.js'
import { brokerCases } from './brokers.js'
import { REDIS_URL, redisPrefix, startCluster } from './fixtures/cluster.js'
import { connect, postJson, startServer, type Server } from './helpers.js'

async function publish (server: Server, body: object): Promise<{ status: number, body: any }> {
  return postJson(`${server.url}/api/publish`, body)
}

for (const broker of brokerCases) {
  t.test(`${broker.name}: idempotent publish`, async t => {
    t.test('the same key twice: the first result, one message delivered', async t => {
      const server = await startServer(t, broker.overrides(t))
      const topic = 'idem.one'
      const client = await connect(t, server.wsUrl)
      await client.request({ type: 'subscribe', topic })

      const first = await publish(server, { topic, data: 'a', idempotencyKey: 'order-1' })
      t.equal(first.status, 200)
      t.match(first.body, { topic, offset: 1 })
      const again = await publish(server, { topic, data: 'changed', idempotencyKey: 'order-1' })
      t.equal(again.status, 200)
      t.same(again.body, first.body, 'the repeat answers the first result')

      // A publication without a key goes right after: offset 2 proves the repeat took no offset, and
      // once it has arrived anything the repeat might have sent would have arrived before it.
      const plain = await publish(server, { topic, data: 'b' })
      t.equal(plain.body.offset, 2)
      await client.next(frame => frame.type === 'message' && frame.offset === 2)
      t.same(client.messages(topic).map(m => [m.offset, m.data]), [[1, 'a'], [2, 'b']], 'one message per key')

      const other = await publish(server, { topic, data: 'c', idempotencyKey: 'order-2' })
      t.equal(other.body.offset, 3, 'another key is another publication')
      t.equal(server.app[kRealtimeNode].stats.publications.http, 3, 'the repeat is not counted as a publication')
    })

    t.test('keys are per topic', async t => {
      const server = await startServer(t, broker.overrides(t))
      const a = await publish(server, { topic: 'idem.a', data: 1, idempotencyKey: 'k' })
      const b = await publish(server, { topic: 'idem.b', data: 1, idempotencyKey: 'k' })
      t.match(a.body, { topic: 'idem.a', offset: 1 })
      t.match(b.body, { topic: 'idem.b', offset: 1 })
      t.same((await publish(server, { topic: 'idem.b', data: 2, idempotencyKey: 'k' })).body, b.body)
    })

    t.test('concurrent requests with one key publish once', async t => {
      const server = await startServer(t, broker.overrides(t))
      const topic = 'idem.concurrent'
      const results = await Promise.all(Array.from({ length: 10 }, () => publish(server, { topic, data: 'x', idempotencyKey: 'same' })))
      t.same(new Set(results.map(r => JSON.stringify(r.body))).size, 1, 'every request got the same answer')
      t.equal(results[0].body.offset, 1)
      const history = await fetch(`${server.url}/api/topics/${topic}/history`).then(async r => r.json())
      t.equal(history.offset, 1, 'one publication in the stream')
    })

    t.test('an invalid key is a 400', async t => {
      const server = await startServer(t, broker.overrides(t))
      t.equal((await publish(server, { topic: 'idem.bad', data: 1, idempotencyKey: '' })).status, 400)
      t.equal((await publish(server, { topic: 'idem.bad', data: 1, idempotencyKey: 'x'.repeat(257) })).status, 400)
      t.equal((await publish(server, { topic: 'idem.bad', data: 1, idempotencyKey: 5 })).status, 400)
    })
  })
}

t.test('redis: across two nodes, the second node answers the first result and delivers nothing new', async t => {
  const [one, two] = await startCluster(t, 2, { REDIS_URL, REDIS_PREFIX: redisPrefix(t) }, 'idem')
  const topic = 'idem.nodes'
  const onTwo = await connect(t, two.wsUrl)
  await onTwo.request({ type: 'subscribe', topic })
  const first = await postJson(`${one.url}/api/publish`, { topic, data: 'from one', idempotencyKey: 'cross' })
  const second = await postJson(`${two.url}/api/publish`, { topic, data: 'from two', idempotencyKey: 'cross' })
  t.equal(first.status, 200)
  t.match(first.body, { topic, offset: 1 })
  t.same(second.body, first.body, 'node two answers node one\'s result')
  await postJson(`${two.url}/api/publish`, { topic, data: 'marker' })
  await onTwo.next(frame => frame.type === 'message' && frame.data === 'marker')
  t.same(onTwo.messages(topic).map(m => [m.offset, m.data]), [[1, 'from one'], [2, 'marker']], 'one message for the key')
})
