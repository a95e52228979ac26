// History conformance, on every broker: the last HISTORY_SIZE publications, kept HISTORY_TTL seconds
// after the last one, read over HTTP and websocket with `since` and `limit`.
import t from 'tap'
import { EMPTY_EPOCH } from '../src/core/brokers/history.js'
import { brokerCases } from './brokers.js'
import { eventually } from './fixtures/cluster.js'
import { connect, getJson, postJson, startServer, type Server } from './helpers.js'

async function publish (server: Server, topic: string, data: unknown): Promise<{ epoch: string, offset: number }> {
  const response = await postJson(`${server.url}/api/publish`, { topic, data })
  if (response.status !== 200) throw new Error(`publish answered ${response.status}: ${JSON.stringify(response.body)}`)
  return response.body
}

const offsets = (messages: Array<{ offset: number }>): number[] => messages.map(message => message.offset)

for (const broker of brokerCases) {
  t.test(`${broker.name}: history`, async t => {
    t.test('keeps the last HISTORY_SIZE publications; since and limit select from them (HTTP)', async t => {
      const server = await startServer(t, { ...broker.overrides(t), historySize: 5 })
      const topic = 'hist.http'
      let epoch = ''
      for (let i = 1; i <= 8; i++) epoch = (await publish(server, topic, { i })).epoch
      const url = `${server.url}/api/topics/${topic}/history`

      const all = await getJson(url)
      t.equal(all.status, 200)
      t.match(all.body, { topic, epoch, offset: 8 })
      t.same(offsets(all.body.messages), [4, 5, 6, 7, 8], 'the newest HISTORY_SIZE, oldest first')
      t.match(all.body.messages[0], { type: 'message', topic, epoch, offset: 4, data: { i: 4 } })
      t.type(all.body.messages[0].ts, 'number')

      t.same(offsets((await getJson(`${url}?limit=3`)).body.messages), [6, 7, 8], 'limit without since: the newest ones')
      t.same(offsets((await getJson(`${url}?since=5&epoch=${epoch}`)).body.messages), [6, 7, 8], 'since: those after it')
      t.same(offsets((await getJson(`${url}?since=5&epoch=${epoch}&limit=2`)).body.messages), [6, 7], 'since + limit: the oldest after it')
      t.same(offsets((await getJson(`${url}?since=2&epoch=${epoch}`)).body.messages), [4, 5, 6, 7, 8], 'since before the ring: what is left')
      t.same(offsets((await getJson(`${url}?since=8&epoch=${epoch}`)).body.messages), [], 'since the top: nothing')
      t.same(offsets((await getJson(`${url}?since=5&epoch=other`)).body.messages), [4, 5, 6, 7, 8], 'another epoch: since is ignored')
      t.same(offsets((await getJson(`${url}?limit=0`)).body.messages), [], 'limit 0: position only')
      t.same(offsets((await getJson(`${url}?limit=1000`)).body.messages), [4, 5, 6, 7, 8], 'limit is capped at HISTORY_SIZE')

      const fresh = await getJson(`${server.url}/api/topics/hist.never/history`)
      t.equal(fresh.status, 200)
      t.match(fresh.body, { topic: 'hist.never', offset: 0, messages: [] }, 'a topic never published to: offset 0')
      t.type(fresh.body.epoch, 'string')
      t.not(fresh.body.epoch, '')

      t.equal((await getJson(`${url}?since=5`)).status, 400, 'since without epoch is a 400')
      t.equal((await getJson(`${server.url}/api/topics/a..b/history`)).status, 400, 'an invalid topic is a 400')
    })

    t.test('the websocket history request answers the same', async t => {
      const server = await startServer(t, { ...broker.overrides(t), historySize: 5 })
      const topic = 'hist.ws'
      let epoch = ''
      for (let i = 1; i <= 7; i++) epoch = (await publish(server, topic, i)).epoch
      const client = await connect(t, server.wsUrl)

      const all = await client.request({ type: 'history', topic })
      t.match(all, { type: 'ack', topic, epoch, offset: 7 })
      t.same(offsets(all.messages), [3, 4, 5, 6, 7])
      t.same(all.messages.map((m: { data: number }) => m.data), [3, 4, 5, 6, 7])
      t.same(offsets((await client.request({ type: 'history', topic, limit: 2 })).messages), [6, 7])
      t.same(offsets((await client.request({ type: 'history', topic, since: { epoch, offset: 4 } })).messages), [5, 6, 7])
      t.same(offsets((await client.request({ type: 'history', topic, since: { epoch, offset: 4 }, limit: 1 })).messages), [5])
      t.same(offsets((await client.request({ type: 'history', topic, since: { epoch: 'other', offset: 4 }, limit: 1 })).messages), [7])
      t.match(await client.request({ type: 'history', topic, limit: -1 }), { type: 'error', code: 'bad_request' })
      t.match(await client.request({ type: 'history', topic, since: { epoch } }), { type: 'error', code: 'bad_request' })
      t.same(client.messages(), [], 'history is a reply, not a delivery')
    })

    t.test('HISTORY_SIZE=0 keeps nothing, offsets still count', async t => {
      const server = await startServer(t, { ...broker.overrides(t), historySize: 0 })
      for (let i = 1; i <= 3; i++) await publish(server, 'hist.none', i)
      const history = await getJson(`${server.url}/api/topics/hist.none/history`)
      t.match(history.body, { topic: 'hist.none', offset: 3, messages: [] })
    })

    t.test('history expires HISTORY_TTL after the last publication, and the stream starts a new epoch', async t => {
      const server = await startServer(t, { ...broker.overrides(t), historyTtl: 1 })
      const topic = 'hist.ttl'
      await publish(server, topic, 1)
      const { epoch } = await publish(server, topic, 2)
      const before = await getJson(`${server.url}/api/topics/${topic}/history`)
      t.match(before.body, { epoch, offset: 2 })
      t.same(offsets(before.body.messages), [1, 2])

      let after: any
      await eventually('the stream expires', async () => {
        after = (await getJson(`${server.url}/api/topics/${topic}/history`)).body
        return after.epoch !== epoch
      }, 5000, 100)
      t.match(after, { topic, offset: 0, messages: [] }, 'nothing left, offsets restart')
      t.equal(after.epoch, EMPTY_EPOCH, 'no stream: the empty epoch (reads create nothing)')
      const next = await publish(server, topic, 3)
      t.not(next.epoch, epoch)
      t.same(next, { topic, epoch: next.epoch, offset: 1 }, 'the next publication is offset 1 of a new epoch')
    })
  })
}
