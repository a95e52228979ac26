// The HTTP publishing API (docs/protocol.md §4): POST /api/publish, POST /api/broadcast, validation errors
// that name the field, the MAX_PAYLOAD body limit, and GET /api/topics/:topic/history.
import t from 'tap'
import { kRealtimeNode } from '../plugins/node.js'
import { connect, getJson, postJson, startServer } from './helpers.js'

t.test('POST /api/publish returns the position and delivers to subscribers', async t => {
  const server = await startServer(t)
  const a = await connect(t, server.wsUrl)
  const b = await connect(t, server.wsUrl)
  const sub = await a.request({ type: 'subscribe', topic: 'orders.eu' })
  await b.request({ type: 'subscribe', topic: 'orders.eu' })

  const first = await postJson(`${server.url}/api/publish`, { topic: 'orders.eu', data: { id: 1 } })
  t.equal(first.status, 200)
  // The subscribes found no stream (the empty epoch): the first publication starts the topic's epoch.
  const { epoch } = first.body
  t.not(epoch, sub.epoch)
  t.same(first.body, { topic: 'orders.eu', epoch, offset: 1 })
  const second = await postJson(`${server.url}/api/publish`, { topic: 'orders.eu', data: null })
  t.same(second.body, { topic: 'orders.eu', epoch, offset: 2 }, 'data may be null; offsets go up by one')

  for (const client of [a, b]) {
    await client.next(frame => frame.type === 'message' && frame.offset === 2)
    const messages = client.messages('orders.eu')
    t.same(messages.map(m => [m.offset, m.data]), [[1, { id: 1 }], [2, null]])
    t.ok(messages.every(m => m.epoch === epoch && typeof m.ts === 'number' && !('from' in m)), 'epoch, ts, no from (server publish)')
  }
  t.equal(server.app[kRealtimeNode].stats.publications.http, 2, 'counted as HTTP publications')
})

t.test('POST /api/publish refuses unknown body fields (more in http-strict.test.ts)', async t => {
  const server = await startServer(t)
  const reply = await postJson(`${server.url}/api/publish`, { topic: 'a', data: 1, extra: true })
  t.equal(reply.status, 400)
  t.match(reply.body.message, "body must NOT have additional property 'extra'")
  t.equal(server.app[kRealtimeNode].stats.publications.http, 0)
})

t.test('POST /api/broadcast publishes to every topic', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  await client.request({ type: 'subscribe', topic: 'b.one' })
  await client.request({ type: 'subscribe', topic: 'b.two' })
  await server.app.realtime.publish('b.two', 'earlier')

  const reply = await postJson(`${server.url}/api/broadcast`, { topics: ['b.one', 'b.two', 'b.three'], data: { all: true } })
  t.equal(reply.status, 200)
  t.same(reply.body.results.map((r: any) => [r.topic, r.offset]), [['b.one', 1], ['b.two', 2], ['b.three', 1]], 'one result per topic, in order')
  t.ok(reply.body.results.every((r: any) => typeof r.epoch === 'string'))
  await client.next(frame => frame.type === 'message' && frame.topic === 'b.one')
  await client.next(frame => frame.type === 'message' && frame.topic === 'b.two' && frame.offset === 2)
  t.same(client.messages('b.one')[0].data, { all: true })
  t.same(client.messages('b.two')[1].data, { all: true })
})

interface BadCase { route: string, body: unknown, field: RegExp }
const badBodies: Record<string, BadCase> = {
  'publish: missing topic': { route: 'publish', body: { data: 1 }, field: /required property 'topic'/ },
  'publish: missing data': { route: 'publish', body: { topic: 'a' }, field: /required property 'data'/ },
  'publish: empty topic': { route: 'publish', body: { topic: '', data: 1 }, field: /body\/topic/ },
  'publish: empty segment': { route: 'publish', body: { topic: 'a..b', data: 1 }, field: /body\/topic "a\.\.b" is not a valid topic/ },
  'publish: bad characters': { route: 'publish', body: { topic: 'a b', data: 1 }, field: /body\/topic .*not a valid topic/ },
  'publish: topic over 255 characters': { route: 'publish', body: { topic: 'x'.repeat(256), data: 1 }, field: /body\/topic/ },
  'publish: numeric topic': { route: 'publish', body: { topic: 5, data: 1 }, field: /body\/topic must be string/ },
  'publish: numeric idempotencyKey': { route: 'publish', body: { topic: 'a', data: 1, idempotencyKey: 7 }, field: /body\/idempotencyKey must be string/ },
  'publish: body is an array': { route: 'publish', body: [{ topic: 'a', data: 1 }], field: /body must be object/ },
  'broadcast: missing topics': { route: 'broadcast', body: { data: 1 }, field: /required property 'topics'/ },
  'broadcast: missing data': { route: 'broadcast', body: { topics: ['a'] }, field: /required property 'data'/ },
  'broadcast: topics not an array (string)': { route: 'broadcast', body: { topics: 'a', data: 1 }, field: /body\/topics must be array/ },
  'broadcast: topics not an array (object)': { route: 'broadcast', body: { topics: { a: 1 }, data: 1 }, field: /body\/topics must be array/ },
  'broadcast: empty topics': { route: 'broadcast', body: { topics: [], data: 1 }, field: /body\/topics must NOT have fewer than 1 items/ },
  'broadcast: an invalid topic': { route: 'broadcast', body: { topics: ['ok', 'a..b'], data: 1 }, field: /body\/topics\/1 "a\.\.b"/ },
  'broadcast: a numeric topic': { route: 'broadcast', body: { topics: ['ok', 5], data: 1 }, field: /body\/topics\/1 must be string/ },
  'broadcast: duplicate topics': { route: 'broadcast', body: { topics: ['a', 'a'], data: 1 }, field: /body\/topics .*duplicate/ },
  'broadcast: over 100 topics': { route: 'broadcast', body: { topics: Array.from({ length: 101 }, (_, i) => `t${i}`), data: 1 }, field: /body\/topics must NOT have more than 100 items/ }
}

t.test('invalid bodies get 400 naming the field, and publish nothing', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  for (const topic of ['a', 'ok', '5', 't0']) await client.request({ type: 'subscribe', topic })
  for (const [label, { route, body, field }] of Object.entries(badBodies)) {
    const reply = await postJson(`${server.url}/api/${route}`, body)
    t.equal(reply.status, 400, `${label}: 400`)
    t.match(reply.body, { statusCode: 400, error: 'Bad Request', code: 'bad_request' }, `${label}: Fastify's error shape, the protocol's code`)
    t.match(reply.body.message, field, `${label}: names the field`)
  }
  t.same(server.app[kRealtimeNode].stats.publications.http, 0, 'nothing was published')
  t.equal(client.messages().length, 0, 'nothing was delivered')
})

t.test('bodies that are not JSON objects are refused', async t => {
  const server = await startServer(t)
  const notJson = await postJson(`${server.url}/api/publish`, '{"topic": "a", ')
  t.equal(notJson.status, 400)
  t.match(notJson.body, { statusCode: 400, code: 'bad_request', error: 'Bad Request', message: /JSON/ })
  const text = await fetch(`${server.url}/api/publish`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' })
  t.equal(text.status, 415, 'a text body is unsupported: the API takes JSON only')
  t.match(await text.json(), { statusCode: 415, code: 'bad_request', message: /takes application\/json/ })
  const unknown = await fetch(`${server.url}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<a/>' })
  t.equal(unknown.status, 415, 'other content types are unsupported')
})

t.test("Fastify's own refusals carry the protocol's codes, with the field named", async t => {
  const server = await startServer(t)
  const since = await getJson(`${server.url}/api/topics/a/history?since=abc&epoch=e`)
  t.same(since, { status: 400, body: { statusCode: 400, code: 'bad_request', error: 'Bad Request', message: 'querystring/since must be integer' } }, "Fastify's validator")
  const limit = await getJson(`${server.url}/api/topics/a/history?limit=-1`)
  t.match(limit, { status: 400, body: { code: 'bad_request', message: 'querystring/limit must be >= 0' } })
  const empty = await fetch(`${server.url}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' } })
  t.match(await empty.json(), { statusCode: 400, code: 'bad_request', message: /empty/ }, 'an empty JSON body')
})

t.test('a body over MAX_PAYLOAD gets 413', async t => {
  const server = await startServer(t, { maxPayload: 1024 })
  const big = { topic: 'a', data: 'x'.repeat(2000) }
  const publish = await postJson(`${server.url}/api/publish`, big)
  t.equal(publish.status, 413)
  t.match(publish.body, { statusCode: 413, code: 'too_large', message: /MAX_PAYLOAD \(1024 bytes\)/ })
  const broadcast = await postJson(`${server.url}/api/broadcast`, { topics: ['a'], data: 'x'.repeat(2000) })
  t.equal(broadcast.status, 413)

  // Just under the limit passes.
  const head = JSON.stringify({ topic: 'a', data: '' })
  const fits = JSON.stringify({ topic: 'a', data: 'x'.repeat(1024 - head.length) })
  t.equal(Buffer.byteLength(fits), 1024)
  const ok = await postJson(`${server.url}/api/publish`, fits)
  t.equal(ok.status, 200)
  t.equal(ok.body.offset, 1, 'the refused ones published nothing')
})

t.test('GET /api/topics/:topic/history returns retained publications', async t => {
  const server = await startServer(t, { historySize: 4 })
  const empty = await getJson(`${server.url}/api/topics/hist.t/history`)
  t.equal(empty.status, 200)
  t.match(empty.body, { topic: 'hist.t', epoch: '~~~~~~~~', offset: 0, messages: [] }, 'an unknown topic: the empty epoch, offset 0, no messages')

  let epoch = ''
  for (let i = 1; i <= 6; i++) epoch = (await postJson(`${server.url}/api/publish`, { topic: 'hist.t', data: i })).body.epoch
  const all = await getJson(`${server.url}/api/topics/hist.t/history`)
  t.equal(all.status, 200)
  t.match(all.body, { topic: 'hist.t', epoch, offset: 6 })
  t.same(all.body.messages.map((m: any) => m.offset), [3, 4, 5, 6], 'at most HISTORY_SIZE, the newest')
  t.match(all.body.messages[0], { type: 'message', topic: 'hist.t', epoch, offset: 3, data: 3 })
  t.type(all.body.messages[0].ts, 'number')

  const limited = await getJson(`${server.url}/api/topics/hist.t/history?limit=2`)
  t.same(limited.body.messages.map((m: any) => m.data), [5, 6], 'limit: the newest n')
  const capped = await getJson(`${server.url}/api/topics/hist.t/history?limit=100`)
  t.equal(capped.body.messages.length, 4, 'limit is capped at HISTORY_SIZE')
  const none = await getJson(`${server.url}/api/topics/hist.t/history?limit=0`)
  t.same(none.body.messages, [])

  const since = await getJson(`${server.url}/api/topics/hist.t/history?since=4&epoch=${epoch}`)
  t.same(since.body.messages.map((m: any) => m.offset), [5, 6], 'since + epoch: what came after')
  const page = await getJson(`${server.url}/api/topics/hist.t/history?since=3&epoch=${epoch}&limit=2`)
  t.same(page.body.messages.map((m: any) => m.offset), [4, 5], 'since + limit: the oldest after it (paging forward)')
  const upToDate = await getJson(`${server.url}/api/topics/hist.t/history?since=6&epoch=${epoch}`)
  t.same(upToDate.body.messages, [], 'nothing after the top')
})

t.test('the history route refuses bad queries with 400', async t => {
  const server = await startServer(t)
  const cases: Array<[string, RegExp]> = [
    ['?since=1', /epoch/],
    ['?since=abc&epoch=x', /querystring\/since/],
    ['?limit=-1', /querystring\/limit/],
    ['?since=-1&epoch=x', /querystring\/since/]
  ]
  for (const [query, field] of cases) {
    const reply = await getJson(`${server.url}/api/topics/t/history${query}`)
    t.equal(reply.status, 400, query)
    t.match(reply.body.message, field, `${query}: names the field`)
  }
  const badTopic = await getJson(`${server.url}/api/topics/a..b/history`)
  t.equal(badTopic.status, 400)
  t.match(badTopic.body.message, /params\/topic "a\.\.b"/)
})

t.test('a websocket history request answers like the HTTP route', async t => {
  const server = await startServer(t)
  for (let i = 1; i <= 3; i++) await server.app.realtime.publish('h.ws', i)
  const client = await connect(t, server.wsUrl)
  const ack = await client.request({ type: 'history', topic: 'h.ws', limit: 2 })
  const http = await getJson(`${server.url}/api/topics/h.ws/history?limit=2`)
  t.match(ack, { type: 'ack', topic: 'h.ws', offset: 3, epoch: http.body.epoch })
  t.same(ack.messages, http.body.messages, 'the same stored frames')
})
