// Hostile input that used to be answered 500 / `internal` is a 400 / `bad_request`
// naming the field, on every broker: `data` nested deeper than JSON.stringify can recurse, a history
// `since` past any stream ID Redis takes, and a revoke `expiresAt` past what PXAT takes.
import t from 'tap'
import { MAX_DATA_DEPTH } from '../src/core/protocol.js'
import { brokerCases } from './brokers.js'
import { connect, getJson, postJson, startServer } from './helpers.js'

/** `data` nested `depth` arrays deep, as JSON text: 30,000 levels are 60 KB, within MAX_PAYLOAD. */
const nested = (depth: number): string => `${'['.repeat(depth)}${']'.repeat(depth)}`

for (const broker of brokerCases) {
  t.test(`${broker.name}: bad input is a 400 naming the field`, async t => {
    const server = await startServer(t, { ...broker.overrides(t), maxPayload: 128 * 1024 })

    t.test('data nested 30,000 deep: websocket publish', async t => {
      const client = await connect(t, server.wsUrl)
      client.send(`{"type":"publish","id":"deep","topic":"bad.deep","data":${nested(30000)}}`)
      const reply = await client.next(frame => frame.id === 'deep')
      t.match(reply, { type: 'error', code: 'bad_request', message: /"data" is nested deeper than 256/ })
      // At the limit it still publishes.
      client.send(`{"type":"publish","id":"ok","topic":"bad.deep","data":${nested(MAX_DATA_DEPTH)}}`)
      t.match(await client.next(frame => frame.id === 'ok'), { type: 'ack', offset: 1 }, 'MAX_DATA_DEPTH levels are accepted')
      client.send({ type: 'ping', id: 'alive' })
      t.match(await client.next(frame => frame.id === 'alive'), { type: 'pong' }, 'still connected')
    })

    t.test('data nested 30,000 deep: HTTP publish and broadcast', async t => {
      const publish = await postJson(`${server.url}/api/publish`, `{"topic":"bad.deep.http","data":${nested(30000)}}`)
      t.equal(publish.status, 400)
      t.match(publish.body, { statusCode: 400, code: 'bad_request', message: /body\/data is nested deeper than 256/ })
      const broadcast = await postJson(`${server.url}/api/broadcast`, `{"topics":["bad.deep.b"],"data":${nested(30000)}}`)
      t.equal(broadcast.status, 400)
      t.match(broadcast.body, { code: 'bad_request', message: /body\/data/ })
      const ok = await postJson(`${server.url}/api/publish`, `{"topic":"bad.deep.http","data":${nested(MAX_DATA_DEPTH)}}`)
      t.equal(ok.status, 200, 'MAX_DATA_DEPTH levels are accepted')
      t.equal(ok.body.offset, 1, 'the refused one published nothing')
    })

    t.test('history since=1e20', async t => {
      const published = await postJson(`${server.url}/api/publish`, { topic: 'bad.since', data: 1 })
      const reply = await getJson(`${server.url}/api/topics/bad.since/history?since=1e20&epoch=${published.body.epoch as string}`)
      t.equal(reply.status, 400)
      t.match(reply.body.message, /since/, 'names the field')
      const limit = await getJson(`${server.url}/api/topics/bad.since/history?limit=1e20`)
      t.equal(limit.status, 400)
      t.match(limit.body.message, /limit/, 'names the field')
      const max = await getJson(`${server.url}/api/topics/bad.since/history?since=${Number.MAX_SAFE_INTEGER}&epoch=${published.body.epoch as string}`)
      t.equal(max.status, 200, 'the largest safe integer is a valid (empty) position')
      const client = await connect(t, server.wsUrl)
      const ws = await client.request({ type: 'history', topic: 'bad.since', since: { epoch: published.body.epoch, offset: 1e20 } })
      t.match(ws, { type: 'error', code: 'bad_request', message: /since\.offset/ }, 'websocket: names the field')
    })

    t.test('revoke expiresAt 1e300', async t => {
      const reply = await postJson(`${server.url}/api/revoke`, { jti: 'bad-expiry', expiresAt: 1e300 })
      t.equal(reply.status, 400)
      t.match(reply.body.message, /expiresAt/, 'names the field')
      const latest = await postJson(`${server.url}/api/revoke`, { jti: 'bad-expiry', expiresAt: 8_640_000_000_000_000 })
      t.equal(latest.status, 200, 'the latest Date is taken')
    })
  })
}
