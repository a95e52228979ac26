// Per-connection limits on the websocket: MAX_PAYLOAD (close 1009), MAX_SUBSCRIPTIONS
// (limit_exceeded) and the message rate (rate_limited, then close 4008).
import t from 'tap'
import WebSocket from 'ws'
import { kRealtimeNode } from '../plugins/node.js'
import { connect, eventually, refusedUpgrade, startServer } from './helpers.js'

t.test('a frame over MAX_PAYLOAD closes the connection with 1009', async t => {
  const server = await startServer(t, { maxPayload: 1024 })
  const client = await connect(t, server.wsUrl)
  client.ws.on('error', () => {})
  await client.request({ type: 'subscribe', topic: 'big' })
  client.send({ type: 'publish', id: 'too-big', topic: 'big', data: 'x'.repeat(2000) })
  const closed = await client.closed
  t.equal(closed.code, 1009)
  t.notOk(client.frames.some(frame => frame.id === 'too-big'), 'the frame was not handled')
  await eventually('the condition', () => server.app[kRealtimeNode].hub.counts.connections === 0)
  t.same(server.app[kRealtimeNode].hub.counts, { connections: 0, subscriptions: 0, topics: 0 }, 'the connection is gone')
  t.equal((await server.app.realtime.history('big', { limit: 10 })).offset, 0, 'nothing was published')
  t.equal(server.app[kRealtimeNode].stats.disconnects.websocket.get(1009), 1, 'counted under its real close code, not 1006')
})

t.test('a text frame that is not valid UTF-8 closes with 1007, counted as 1007', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  client.ws.on('error', () => {})
  // ws validates outgoing text only when asked to; a Buffer sent with binary: false goes out as is.
  client.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false })
  t.equal((await client.closed).code, 1007)
  await eventually('the condition', () => server.app[kRealtimeNode].hub.counts.connections === 0)
  t.equal(server.app[kRealtimeNode].stats.disconnects.websocket.get(1007), 1)
})

t.test('a message in more fragments than ws takes closes with 1008, counted as 1008', async t => {
  // Regression: the disconnect metrics counted ws' frame errors from a copy of ws' close-code table,
  // which said 1002 for WS_ERR_TOO_MANY_BUFFERED_PARTS where ws sends 1008. Now the code is ws' own.
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  client.ws.on('error', () => {})
  // ws' server takes at most 16384 fragments per message (its maxFragments default): one more, each
  // a byte, stays far under MAX_PAYLOAD.
  const WS_MAX_FRAGMENTS = 16 * 1024
  for (let i = 0; i < WS_MAX_FRAGMENTS; i++) client.ws.send('x', { fin: false })
  client.ws.send('x', { fin: true })
  t.equal((await client.closed).code, 1008, 'ws closes with 1008 (policy violation)')
  await eventually('the connection is gone', () => server.app[kRealtimeNode].hub.counts.connections === 0)
  t.same([...server.app[kRealtimeNode].stats.disconnects.websocket], [[1008, 1]], 'counted under 1008, the code ws sent')
})

t.test('a frame of exactly MAX_PAYLOAD bytes is accepted', async t => {
  const server = await startServer(t, { maxPayload: 1024 })
  const client = await connect(t, server.wsUrl)
  const head = JSON.stringify({ type: 'publish', id: 'fits', topic: 'big', data: '' })
  const frame = JSON.stringify({ type: 'publish', id: 'fits', topic: 'big', data: 'x'.repeat(1024 - head.length) })
  t.equal(Buffer.byteLength(frame), 1024)
  client.send(frame)
  const ack = await client.next(reply => reply.id === 'fits')
  t.match(ack, { type: 'ack', offset: 1 })
  t.equal(client.ws.readyState, WebSocket.OPEN)
})

t.test('more than MAX_SUBSCRIPTIONS subscriptions is limit_exceeded; the connection stays usable', async t => {
  const server = await startServer(t, { maxSubscriptions: 3 })
  const client = await connect(t, server.wsUrl)
  for (const topic of ['s.1', 's.2', 's.3']) t.match(await client.request({ type: 'subscribe', topic }), { type: 'ack', topic })
  const over = await client.request({ type: 'subscribe', id: 'fourth', topic: 's.4' })
  t.match(over, { type: 'error', id: 'fourth', code: 'limit_exceeded', message: /3/ })
  t.equal(server.app[kRealtimeNode].hub.counts.subscriptions, 3, 'not subscribed')
  t.equal(client.ws.readyState, WebSocket.OPEN)

  // The refused topic gets nothing; the others still deliver.
  await server.app.realtime.publish('s.4', 'no')
  await server.app.realtime.publish('s.1', 'yes')
  await client.next(frame => frame.type === 'message' && frame.topic === 's.1')
  t.equal(client.messages('s.4').length, 0)

  // Freeing a slot makes room again.
  await client.request({ type: 'unsubscribe', topic: 's.2' })
  t.match(await client.request({ type: 'subscribe', topic: 's.4' }), { type: 'ack', topic: 's.4' })
  t.match(await client.request({ type: 'subscribe', topic: 's.5' }), { type: 'error', code: 'limit_exceeded' })
})

t.test('MAX_SUBSCRIPTIONS is per connection', async t => {
  const server = await startServer(t, { maxSubscriptions: 1 })
  const a = await connect(t, server.wsUrl)
  const b = await connect(t, server.wsUrl)
  t.match(await a.request({ type: 'subscribe', topic: 'x' }), { type: 'ack' })
  t.match(await b.request({ type: 'subscribe', topic: 'x' }), { type: 'ack' })
  t.match(await b.request({ type: 'subscribe', topic: 'y' }), { type: 'error', code: 'limit_exceeded' })
})

t.test('over the message rate: rate_limited errors, then close 4008 when it goes on', async t => {
  // A bucket of 5 that refills at 1 frame per second: the 10 frames sent at once cannot earn a token.
  const server = await startServer(t, { messageRate: 1, messageBurst: 5 })
  const client = await connect(t, server.wsUrl)
  client.ws.on('error', () => {})
  for (let i = 1; i <= 10; i++) client.send({ type: 'ping', id: i })
  const closed = await client.closed
  t.equal(closed.code, 4008)
  const pongs = client.frames.filter(frame => frame.type === 'pong')
  const errors = client.frames.filter(frame => frame.type === 'error')
  t.same(pongs.map(pong => pong.id), [1, 2, 3, 4, 5], 'the burst is served')
  t.equal(errors.length, 4, 'then MESSAGE_BURST - 1 refusals')
  t.ok(errors.every(error => error.code === 'rate_limited' && !('id' in error)), 'rate_limited, without id (not parsed)')
  t.equal(server.app[kRealtimeNode].stats.rateLimited.message, 5, 'five frames refused in all')
})

t.test('a client that only bursts is told, and served again once the bucket refills', async t => {
  const server = await startServer(t, { messageRate: 20, messageBurst: 3 })
  const client = await connect(t, server.wsUrl)
  for (let i = 1; i <= 4; i++) client.send({ type: 'ping', id: i })
  const error = await client.next(frame => frame.type === 'error')
  t.match(error, { code: 'rate_limited', message: /20 frames per second/ })
  t.equal(client.frames.filter(frame => frame.type === 'pong').length, 3)
  // At 20 per second a token is back after 50 ms; waiting longer only adds tokens (up to the burst).
  await new Promise(resolve => setTimeout(resolve, 200))
  client.send({ type: 'ping', id: 'later' })
  const reply = await client.next(frame => frame.id === 'later' || (frame.type === 'error' && frame !== error))
  t.same(reply, { type: 'pong', id: 'later' }, 'served again')
  t.equal(client.ws.readyState, WebSocket.OPEN, 'still open')
})

t.test('at MAX_CONNECTIONS a new upgrade gets 503; a freed slot admits again', async t => {
  const server = await startServer(t, { maxConnections: 2 })
  const first = await connect(t, server.wsUrl)
  await connect(t, server.wsUrl)
  const refused = await refusedUpgrade(server.wsUrl)
  t.equal(refused.status, 503)
  t.match(JSON.parse(refused.body), { code: 'unavailable', message: /MAX_CONNECTIONS/ })
  first.close()
  await first.closed
  await eventually('the condition', () => server.app[kRealtimeNode].hub.counts.connections === 1)
  const third = await connect(t, server.wsUrl)
  t.equal(third.welcome.type, 'welcome', 'admitted once a connection has gone')
})
