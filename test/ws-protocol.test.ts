// The websocket protocol (docs/protocol.md §2) against a real server and real `ws` clients: welcome, acks,
// delivery, offsets, ping/pong, and every malformed input answered with an error on a connection that
// stays usable.
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { kRealtimeNode } from '../plugins/node.js'
import { mint, SECRET } from './auth-tokens.js'
import { connect, type Client, type Frame, startServer } from './helpers.js'

/** The first frame matching `match` received after the first `skip` frames. */
async function nextAfter (client: Client, skip: number, match: (frame: Frame) => boolean): Promise<Frame> {
  return client.next(frame => client.frames.indexOf(frame) >= skip && match(frame))
}

let pings = 0
/** Proves the connection still works: a ping with a fresh id is answered with its pong. */
async function assertUsable (t: Test, client: Client, label: string): Promise<void> {
  const id = `alive-${++pings}`
  client.send({ type: 'ping', id })
  const pong = await client.next(frame => frame.type === 'pong' && frame.id === id)
  t.equal(pong.id, id, `${label}: the connection still answers`)
  t.equal(client.ws.readyState, WebSocket.OPEN, `${label}: the socket is open`)
}

t.test('welcome is the first frame and carries connectionId, user, node, heartbeat, expiresAt', async t => {
  const server = await startServer(t, { nodeId: 'node-w', heartbeatInterval: 12345 })
  const a = await connect(t, server.wsUrl)
  const b = await connect(t, server.wsUrl)
  t.equal(a.frames[0], a.welcome, 'the first frame')
  t.match(a.welcome, { type: 'welcome', user: null, node: 'node-w', heartbeat: 12345, expiresAt: null })
  t.match(a.welcome.connectionId, /^[0-9a-f-]{36}$/)
  t.not(a.welcome.connectionId, b.welcome.connectionId, 'each connection has its own id')
  t.same(Object.keys(a.welcome).sort(), ['connectionId', 'expiresAt', 'heartbeat', 'node', 'type', 'user'])
})

t.test('subscribe and unsubscribe are acknowledged with the request id', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  const ack = await client.request({ type: 'subscribe', id: 'sub-1', topic: 'news.sport' })
  t.match(ack, { type: 'ack', id: 'sub-1', topic: 'news.sport', offset: 0 })
  t.type(ack.epoch, 'string')
  t.ok(ack.epoch.length > 0, 'an epoch')
  t.notOk('recovered' in ack, 'no recovered field without since')

  const numeric = await client.request({ type: 'subscribe', id: 42, topic: 'news.weather' })
  t.match(numeric, { type: 'ack', id: 42, topic: 'news.weather' }, 'numeric ids are echoed as numbers')

  const unsub = await client.request({ type: 'unsubscribe', id: 'u-1', topic: 'news.sport' })
  t.same(unsub, { type: 'ack', id: 'u-1', topic: 'news.sport' })
  t.same(server.app[kRealtimeNode].hub.counts, { connections: 1, subscriptions: 1, topics: 1 })

  // After the unsubscribe nothing more arrives on that topic, while the other subscription still works.
  const gone = await server.app.realtime.publish('news.sport', 'gone')
  await server.app.realtime.publish('news.weather', 'sunny')
  const message = await client.next(frame => frame.type === 'message')
  t.match(message, { topic: 'news.weather', data: 'sunny' })
  t.equal(client.messages('news.sport').length, 0, 'nothing from the unsubscribed topic')

  const again = await client.request({ type: 'subscribe', topic: 'news.sport' })
  t.match(again, { type: 'ack', topic: 'news.sport', offset: 1, epoch: gone.epoch }, 'subscribing again after unsubscribe works')
})

t.test('unknown fields are ignored', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  const ack = await client.request({ type: 'subscribe', topic: 'a.b', extra: { x: 1 }, colour: 'blue' })
  t.match(ack, { type: 'ack', topic: 'a.b' })
})

t.test('a client publish is acknowledged and delivered to the other subscribers', async t => {
  const server = await startServer(t)
  const publisher = await connect(t, server.wsUrl)
  const first = await connect(t, server.wsUrl)
  const second = await connect(t, server.wsUrl)
  const sub = await first.request({ type: 'subscribe', topic: 'chat.room-1' })
  await second.request({ type: 'subscribe', topic: 'chat.room-1' })

  const before = Date.now()
  const ack = await publisher.request({ type: 'publish', id: 'p1', topic: 'chat.room-1', data: { text: 'hi', n: [1, 2] } })
  t.equal(sub.epoch, '~~~~~~~~', 'no stream before the first publication: the empty epoch')
  t.same(ack, { type: 'ack', id: 'p1', topic: 'chat.room-1', epoch: ack.epoch, offset: 1 })
  t.not(ack.epoch, sub.epoch)

  for (const [name, client] of [['first', first], ['second', second]] as const) {
    const message = await client.next(frame => frame.type === 'message')
    t.match(message, { type: 'message', topic: 'chat.room-1', data: { text: 'hi', n: [1, 2] }, epoch: ack.epoch, offset: 1 }, name)
    t.type(message.ts, 'number', `${name}: ts`)
    t.ok(message.ts >= before - 1000 && message.ts <= Date.now() + 1000, `${name}: ts is when it was published`)
    t.notOk('from' in message, `${name}: no from when the publisher has no user (open mode)`)
  }
  t.equal(publisher.messages().length, 0, 'the publisher is not subscribed and gets no message')
})

t.test('data may be any JSON value, including null; a publish without data is refused', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  await client.request({ type: 'subscribe', topic: 'values' })
  const values = [null, 0, 'text', [1, 'two'], { nested: { deep: true } }, false]
  for (const data of values) {
    const ack = await client.request({ type: 'publish', topic: 'values', data })
    t.equal(ack.type, 'ack', JSON.stringify(data))
  }
  await client.next(frame => frame.type === 'message' && frame.offset === values.length)
  t.same(client.messages('values').map(m => m.data), values)

  const missing = await client.request({ type: 'publish', id: 'no-data', topic: 'values' })
  t.match(missing, { type: 'error', id: 'no-data', code: 'bad_request', message: /data/ })
})

t.test('a message carries from: the publishing user', async t => {
  const server = await startServer(t, { jwtSecret: SECRET })
  const topics = { subscribe: ['chat.>'], publish: ['chat.>'] }
  const alice = await connect(t, `${server.wsUrl}?token=${mint({ sub: 'alice', topics })}`)
  const bob = await connect(t, `${server.wsUrl}?token=${mint({ sub: 'bob', topics })}`)
  t.equal(alice.welcome.user, 'alice', 'welcome.user is the token sub')
  t.type(alice.welcome.expiresAt, 'number', 'welcome.expiresAt is the token exp')
  await bob.request({ type: 'subscribe', topic: 'chat.x' })
  const ack = await alice.request({ type: 'publish', topic: 'chat.x', data: 'hello' })
  t.match(ack, { type: 'ack', topic: 'chat.x', offset: 1 })
  const message = await bob.next(frame => frame.type === 'message')
  t.match(message, { topic: 'chat.x', data: 'hello', from: 'alice', offset: 1, epoch: ack.epoch })
})

t.test('offsets start at 1 and increase by 1 per topic', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  const a = await client.request({ type: 'subscribe', topic: 'topic.a' })
  const b = await client.request({ type: 'subscribe', topic: 'topic.b' })
  t.same([a.offset, b.offset], [0, 0])
  const acks: Frame[] = []
  // Interleaved: each topic counts on its own.
  for (const topic of ['topic.a', 'topic.b', 'topic.a', 'topic.a', 'topic.b', 'topic.a']) {
    acks.push(await client.request({ type: 'publish', topic, data: topic }))
  }
  t.same(acks.map(ack => [ack.topic, ack.offset]), [
    ['topic.a', 1], ['topic.b', 1], ['topic.a', 2], ['topic.a', 3], ['topic.b', 2], ['topic.a', 4]
  ])
  const epochA = acks[0].epoch
  t.not(epochA, acks[1].epoch, 'each topic has its own stream')
  await client.next(frame => frame.type === 'message' && frame.topic === 'topic.a' && frame.offset === 4)
  await client.next(frame => frame.type === 'message' && frame.topic === 'topic.b' && frame.offset === 2)
  t.same(client.messages('topic.a').map(m => m.offset), [1, 2, 3, 4], 'delivered in order, no gap')
  t.same(client.messages('topic.b').map(m => m.offset), [1, 2])
  t.ok(client.messages('topic.a').every(m => m.epoch === epochA), 'one epoch per topic')

  // A later subscriber's ack announces the current top offset; it gets only what comes after.
  const late = await connect(t, server.wsUrl)
  const lateAck = await late.request({ type: 'subscribe', topic: 'topic.a' })
  t.match(lateAck, { offset: 4, epoch: epochA })
  await server.app.realtime.publish('topic.a', 'five')
  const fifth = await late.next(frame => frame.type === 'message')
  t.match(fifth, { offset: 5, data: 'five' })
  t.equal(late.messages().length, 1)
})

t.test('a publication is serialized once: every subscriber gets the same bytes', async t => {
  // hub.deliver -> Subscription.deliver -> connection.send(publication.frame): the frame string the
  // broker built once is what every socket writes. Here we check what arrives.
  const server = await startServer(t)
  const clients = await Promise.all([1, 2, 3].map(() => connect(t, server.wsUrl)))
  for (const client of clients) await client.request({ type: 'subscribe', topic: 'fan.out' })
  const data = { text: 'same for all', unicode: 'ünïcødé ✓', n: 1.5, list: [null, true] }
  await server.app.realtime.publish('fan.out', data)
  await server.app.realtime.publish('fan.out', [2])
  const raws = await Promise.all(clients.map(async client => {
    await client.next(frame => frame.type === 'message' && frame.offset === 2)
    return client.raw.filter(text => text.includes('"type":"message"'))
  }))
  t.equal(raws[0].length, 2)
  t.same(raws[1], raws[0], 'second subscriber: byte-identical frames')
  t.same(raws[2], raws[0], 'third subscriber: byte-identical frames')
  t.same(JSON.parse(raws[0][0]).data, data)
})

t.test('ping is answered with pong, with and without id', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  client.send({ type: 'ping' })
  const bare = await client.next(frame => frame.type === 'pong')
  t.same(bare, { type: 'pong' }, 'no id when the ping had none')
  client.send({ type: 'ping', id: 7 })
  t.same(await client.next(frame => frame.type === 'pong' && frame.id === 7), { type: 'pong', id: 7 })
  client.send({ type: 'ping', id: 'p-x' })
  t.same(await client.next(frame => frame.type === 'pong' && frame.id === 'p-x'), { type: 'pong', id: 'p-x' })
})

t.test('malformed frames get a bad_request error and the connection stays usable', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  // [label, raw text, expected message, id the error should carry]
  const cases: Array<[string, string, RegExp, string | number | undefined]> = [
    ['invalid JSON', '{"type": "subscribe", ', /malformed JSON/, undefined],
    ['plain text', 'hello', /malformed JSON/, undefined],
    ['an empty frame', '', /malformed JSON/, undefined],
    ['an array', '[{"type":"ping"}]', /JSON object/, undefined],
    ['a number', '42', /JSON object/, undefined],
    ['a string', '"subscribe"', /JSON object/, undefined],
    ['null', 'null', /JSON object/, undefined],
    ['a boolean', 'true', /JSON object/, undefined],
    ['an unknown type', '{"type":"dance","id":"d1"}', /unknown type "dance"/, 'd1'],
    ['a missing type', '{"id":"t1","topic":"a"}', /"type"/, 't1'],
    ['a non-string type', '{"type":5,"id":"t2"}', /"type"/, 't2'],
    ['subscribe without id', '{"type":"subscribe","topic":"news"}', /"id" is required/, undefined],
    ['publish without id', '{"type":"publish","topic":"news","data":1}', /"id" is required/, undefined],
    ['unsubscribe without id', '{"type":"unsubscribe","topic":"news"}', /"id" is required/, undefined],
    ['an object id', '{"type":"subscribe","id":{},"topic":"news"}', /"id" must be/, undefined],
    ['an empty string id', '{"type":"subscribe","id":"","topic":"news"}', /"id" must be/, undefined],
    ['a too long id', JSON.stringify({ type: 'subscribe', id: 'i'.repeat(129), topic: 'news' }), /"id" must be/, undefined],
    ['a missing topic', '{"type":"subscribe","id":"m1"}', /"topic" must be a string/, 'm1'],
    ['a numeric topic', '{"type":"subscribe","id":"m2","topic":5}', /"topic" must be a string/, 'm2'],
    ['an empty topic', '{"type":"subscribe","id":"e0","topic":""}', /invalid topic/, 'e0'],
    ['an empty segment', '{"type":"subscribe","id":"e1","topic":"news..sport"}', /invalid topic "news\.\.sport"/, 'e1'],
    ['a leading dot', '{"type":"subscribe","id":"e2","topic":".news"}', /invalid topic/, 'e2'],
    ['a trailing dot', '{"type":"publish","id":"e3","topic":"news.","data":1}', /invalid topic/, 'e3'],
    ['a space', '{"type":"subscribe","id":"c1","topic":"news sport"}', /invalid topic/, 'c1'],
    ['a slash', '{"type":"subscribe","id":"c2","topic":"news/sport"}', /invalid topic/, 'c2'],
    ['a wildcard', '{"type":"subscribe","id":"c3","topic":"news.*"}', /invalid topic/, 'c3'],
    ['a non-ASCII letter', '{"type":"subscribe","id":"c4","topic":"nëws"}', /invalid topic/, 'c4'],
    ['256 characters', JSON.stringify({ type: 'subscribe', id: 'l1', topic: 'x'.repeat(256) }), /invalid topic/, 'l1'],
    ['a long topic in unsubscribe', JSON.stringify({ type: 'unsubscribe', id: 'l2', topic: `${'ab.'.repeat(90)}c` }), /invalid topic/, 'l2'],
    ['a since that is not an object', '{"type":"subscribe","id":"s1","topic":"a","since":5}', /"since"/, 's1'],
    ['a since without epoch', '{"type":"subscribe","id":"s2","topic":"a","since":{"offset":1}}', /"since.epoch"/, 's2'],
    ['a negative since offset', '{"type":"subscribe","id":"s3","topic":"a","since":{"epoch":"x","offset":-1}}', /"since.offset"/, 's3']
  ]
  for (const [label, text, message, id] of cases) {
    const skip = client.frames.length
    client.send(text)
    const error = await nextAfter(client, skip, frame => frame.type === 'error')
    t.equal(error.code, 'bad_request', `${label}: bad_request`)
    t.match(error.message, message, `${label}: the message says what is wrong`)
    if (id === undefined) t.notOk('id' in error, `${label}: no id to echo`)
    else t.equal(error.id, id, `${label}: echoes the id`)
    await assertUsable(t, client, label)
  }
  t.equal(server.app[kRealtimeNode].hub.counts.subscriptions, 0, 'none of them subscribed anything')
  t.equal(client.messages().length, 0)
})

t.test('a 255-character topic is valid', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  const topic = `${'a'.repeat(127)}.${'b'.repeat(127)}`
  t.equal(topic.length, 255)
  t.match(await client.request({ type: 'subscribe', topic }), { type: 'ack', topic })
})

t.test('subscribing twice is bad_request; the first subscription keeps working', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  await client.request({ type: 'subscribe', topic: 'dup' })
  const error = await client.request({ type: 'subscribe', id: 'twice', topic: 'dup' })
  t.match(error, { type: 'error', id: 'twice', code: 'bad_request', message: /already subscribed/ })
  await assertUsable(t, client, 'subscribing twice')
  t.same(server.app[kRealtimeNode].hub.counts, { connections: 1, subscriptions: 1, topics: 1 })
  await server.app.realtime.publish('dup', 1)
  await client.next(frame => frame.type === 'message')
  await server.app.realtime.publish('dup', 2)
  await client.next(frame => frame.type === 'message' && frame.offset === 2)
  t.same(client.messages('dup').map(m => m.data), [1, 2], 'each publication arrives once')
})

t.test('unsubscribing from a topic not subscribed is bad_request', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  const never = await client.request({ type: 'unsubscribe', id: 'u1', topic: 'never.subscribed' })
  t.match(never, { type: 'error', id: 'u1', code: 'bad_request', message: /not subscribed/ })
  await assertUsable(t, client, 'never subscribed')
  await client.request({ type: 'subscribe', topic: 'once' })
  await client.request({ type: 'unsubscribe', topic: 'once' })
  const twice = await client.request({ type: 'unsubscribe', id: 'u2', topic: 'once' })
  t.match(twice, { type: 'error', id: 'u2', code: 'bad_request' }, 'nor twice')
  await assertUsable(t, client, 'unsubscribed twice')
})

t.test('a binary frame is bad_request and the connection stays usable', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  const skip = client.frames.length
  // Even a binary frame holding a valid JSON request is refused: frames are text.
  client.ws.send(Buffer.from(JSON.stringify({ type: 'ping', id: 'bin' })), { binary: true })
  const error = await nextAfter(client, skip, frame => frame.type === 'error')
  t.match(error, { code: 'bad_request', message: /text frames/ })
  t.notOk(client.frames.some(frame => frame.type === 'pong' && frame.id === 'bin'), 'the binary frame was not acted on')
  await assertUsable(t, client, 'binary frame')
})

t.test('a closed client leaves no connection or subscription behind', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  await client.request({ type: 'subscribe', topic: 'a' })
  await client.request({ type: 'subscribe', topic: 'b' })
  t.same(server.app[kRealtimeNode].hub.counts, { connections: 1, subscriptions: 2, topics: 2 })
  client.close()
  const closed = await client.closed
  t.equal(closed.code, 1005, 'a close without code')
  // The server sees the close at about the same time; wait (bounded) for its bookkeeping.
  for (let i = 0; i < 100 && server.app[kRealtimeNode].hub.counts.connections > 0; i++) await new Promise(resolve => setTimeout(resolve, 10))
  t.same(server.app[kRealtimeNode].hub.counts, { connections: 0, subscriptions: 0, topics: 0 })
})
