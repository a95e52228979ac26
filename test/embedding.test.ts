// Embedding (README "Embedding in your Fastify app"): the realtime plugin inside a host app, under a
// prefix, next to the host's routes, with or without the host's own @fastify/websocket, and several
// realtime apps in one process.
import websocket from '@fastify/websocket'
import Fastify, { type FastifyInstance } from 'fastify'
import { once } from 'node:events'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { kRealtimeNode } from '../plugins/node.js'
import { realtime, type RealtimeOptions } from '../src/index.js'
import { connect, getJson, listen, postJson, refusedUpgrade, startServer, within } from './helpers.js'

/** A host app with a route of its own, and the realtime plugin under /rt. */
async function hostApp (t: Test, options: RealtimeOptions = {}): Promise<{ app: FastifyInstance, url: string, wsUrl: string }> {
  const app = Fastify()
  app.get('/hello', async () => ({ hello: 'world' }))
  await app.register(realtime, { prefix: '/rt', ...options })
  app.post<{ Body: { order: number } }>('/orders', async request => {
    const position = await app.realtime.publish(`orders.${request.body.order}`, { status: 'created' })
    return { ok: true, offset: position.offset }
  })
  const url = await listen(t, app)
  return { app, url, wsUrl: `${url.replace('http', 'ws')}/rt/ws` }
}

/** Opens a plain websocket (no realtime protocol) and resolves with the first message it receives. */
async function echo (t: Test, url: string, text: string): Promise<string> {
  const ws = new WebSocket(url)
  t.teardown(() => ws.terminate())
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  const reply = new Promise<string>(resolve => ws.once('message', data => resolve(String(data))))
  ws.send(text)
  return reply
}

t.test('under a prefix: /rt/ws and /rt/api work next to the host routes', async t => {
  const { url, wsUrl } = await hostApp(t)
  const client = await connect(t, wsUrl)
  t.match(client.welcome, { type: 'welcome' })
  await client.request({ type: 'subscribe', topic: 'news' })

  const published = await postJson(`${url}/rt/api/publish`, { topic: 'news', data: 'via prefix' })
  t.equal(published.status, 200)
  t.match(await client.next(frame => frame.type === 'message'), { topic: 'news', data: 'via prefix', offset: 1 })

  t.same((await getJson(`${url}/hello`)).body, { hello: 'world' }, 'the host route still works')
  t.equal((await getJson(`${url}/rt/health/ready`)).status, 200)
  t.equal((await getJson(`${url}/rt/api/topics/news/history`)).body.offset, 1)

  t.equal((await postJson(`${url}/api/publish`, { topic: 'news', data: 1 })).status, 404, 'nothing outside the prefix')
  t.equal((await refusedUpgrade(`${url.replace('http', 'ws')}/ws`)).status, 404, 'no /ws outside the prefix')
})

t.test('app.realtime.publish from a host route reaches a websocket subscriber', async t => {
  const { url, wsUrl } = await hostApp(t)
  const client = await connect(t, wsUrl)
  await client.request({ type: 'subscribe', topic: 'orders.42' })
  const reply = await postJson(`${url}/orders`, { order: 42 })
  t.same(reply.body, { ok: true, offset: 1 })
  const message = await client.next(frame => frame.type === 'message')
  t.match(message, { topic: 'orders.42', data: { status: 'created' }, offset: 1 })
  t.equal((await client.next(frame => frame.type === 'message')).from, undefined, 'a server publish has no from')
})

t.test('plugin options are the configuration fields', async t => {
  const { app, wsUrl } = await hostApp(t, { maxSubscriptions: 1, nodeId: 'embedded-1', heartbeatInterval: 5000 })
  const client = await connect(t, wsUrl)
  t.match(client.welcome, { node: 'embedded-1', heartbeat: 5000 })
  await client.request({ type: 'subscribe', topic: 'one' })
  t.match(await client.request({ type: 'subscribe', topic: 'two' }), { type: 'error', code: 'limit_exceeded' })
  t.equal(app[kRealtimeNode].config.maxSubscriptions, 1)
})

t.test('closing the host drains the realtime sockets with 1001', async t => {
  const { app, wsUrl } = await hostApp(t)
  const client = await connect(t, wsUrl)
  await app.close()
  t.equal((await client.closed).code, 1001)
})

t.test('closing a host app: an upgrade refused during the drain does not hold the close open', async t => {
  // Regression: the host's Fastify (return503OnClosing, the default) answers requests during close
  // with 503 on a path that skipped @fastify/websocket's socket cleanup, so a client that kept the
  // refused socket open (as `ws` does when the caller listens for 'unexpected-response') held
  // server.close() and app.close() for ever.
  const { app, url, wsUrl } = await hostApp(t, { shutdownTimeout: 2000 })
  const stuck = await connect(t, wsUrl)
  stuck.ws.on('error', () => {})
  const socket = (stuck.ws as unknown as { _socket: import('node:net').Socket })._socket
  socket.pause() // does not answer the close handshake: the drain stays open until its deadline
  const closing = app.close()
  const refused = await refusedUpgrade(wsUrl)
  t.equal(refused.status, 503, 'a new upgrade during the drain gets 503')
  t.equal((await getJson(`${url}/rt/health/ready`)).status, 503, 'readiness too')
  await within(closing, 5000, 'app.close()')
  socket.resume()
  await stuck.closed
  t.equal(app[kRealtimeNode].hub.counts.connections, 0)
})

t.test('a host that registered @fastify/websocket itself: both websocket routes work', async t => {
  const app = Fastify()
  // maxPayload bigger than the realtime one: the dispatcher still enforces MAX_PAYLOAD.
  // preClose left to the plugin so that the realtime sockets get the 1001 drain (see the README).
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 }, preClose: done => done() })
  app.get('/echo', { websocket: true }, socket => {
    socket.on('message', data => socket.send(`echo: ${String(data)}`))
  })
  await app.register(realtime, { prefix: '/rt', maxPayload: 1024 })
  const url = await listen(t, app)
  const wsBase = url.replace('http', 'ws')

  t.equal(await echo(t, `${wsBase}/echo`, 'hi'), 'echo: hi', "the host's websocket route works")
  const client = await connect(t, `${wsBase}/rt/ws`)
  const ack = await client.request({ type: 'subscribe', topic: 'shared' })
  t.match(ack, { type: 'ack', topic: 'shared' }, 'the realtime route works')
  await app.realtime.publish('shared', 'x')
  t.match(await client.next(frame => frame.type === 'message'), { data: 'x' })

  const big = await connect(t, `${wsBase}/rt/ws`)
  big.ws.on('error', () => {})
  big.send({ type: 'publish', id: 1, topic: 'shared', data: 'y'.repeat(2000) })
  t.equal((await big.closed).code, 1009, "the realtime MAX_PAYLOAD holds under the host's larger limit")

  // Regression: with the host's preClose replaced as the README says, nobody closed the host's own
  // sockets, and app.close() waited for them for ever.
  const hostSocket = new WebSocket(`${wsBase}/echo`)
  t.teardown(() => hostSocket.terminate())
  await once(hostSocket, 'open')
  const hostClosed = once(hostSocket, 'close')
  await within(app.close(), 5000, 'app.close()')
  t.equal((await client.closed).code, 1001, 'the realtime socket gets 1001')
  t.equal(Number((await hostClosed)[0]), 1001, "so does the host's own websocket")
})

t.test('a host with its own @fastify/websocket (default options) can close', async t => {
  const app = Fastify()
  await app.register(websocket)
  app.get('/echo', { websocket: true }, socket => {
    socket.on('message', data => socket.send(String(data)))
  })
  await app.register(realtime, { prefix: '/rt', shutdownTimeout: 2000 })
  const url = await listen(t, app)
  const wsBase = url.replace('http', 'ws')
  t.equal(await echo(t, `${wsBase}/echo`, 'ping'), 'ping')
  const client = await connect(t, `${wsBase}/rt/ws`)
  await app.close()
  // The host's default preClose closes every socket first, without a code (documented in the README).
  t.ok([1001, 1005].includes((await client.closed).code), 'the realtime socket is closed')
  t.equal(app[kRealtimeNode].hub.counts.connections, 0)
})

t.test('two realtime apps in one process are independent', async t => {
  const first = await startServer(t, { nodeId: 'first' })
  const second = await startServer(t, { nodeId: 'second' })
  const a = await connect(t, first.wsUrl)
  const b = await connect(t, second.wsUrl)
  t.equal(a.welcome.node, 'first')
  t.equal(b.welcome.node, 'second')
  await a.request({ type: 'subscribe', topic: 'same.topic' })
  await b.request({ type: 'subscribe', topic: 'same.topic' })

  for (let i = 1; i <= 3; i++) t.equal((await postJson(`${second.url}/api/publish`, { topic: 'same.topic', data: `second-${i}` })).body.offset, i)
  const firstPublish = await postJson(`${first.url}/api/publish`, { topic: 'same.topic', data: 'first-1' })
  t.equal(firstPublish.body.offset, 1, 'offsets are per app')

  t.match(await a.next(frame => frame.type === 'message'), { data: 'first-1', offset: 1 })
  await b.next(frame => frame.type === 'message' && frame.offset === 3)
  t.same(a.messages().map(m => m.data), ['first-1'], 'nothing from the other app')
  t.same(b.messages().map(m => m.data), ['second-1', 'second-2', 'second-3'])

  await first.app.close()
  t.equal((await a.closed).code, 1001, 'closing one app closes its sockets')
  t.equal(b.ws.readyState, WebSocket.OPEN, 'and not the other app\'s')
  await second.app.realtime.publish('same.topic', 'still here')
  t.match(await b.next(frame => frame.data === 'still here'), { offset: 4 })
})

t.test('two realtime plugins in one host process under different prefixes are refused cleanly', async t => {
  // One instance has one `realtime` decorator; a second registration must fail at start-up, not crash.
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(realtime, { prefix: '/a' })
  await t.rejects(async () => { await app.register(realtime, { prefix: '/b' }) }, /realtime/, 'the second registration fails, naming the decorator')
})

t.test('options are checked like the environment: { maxPayload: 0 } fails the registration, naming it', async t => {
  // Regression: MAX_PAYLOAD=0 was refused at start-up while the same option in code was accepted.
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(
    async () => { await app.register(realtime, { prefix: '/rt', maxPayload: 0 }) },
    { name: 'ConfigError', option: 'maxPayload', variable: 'MAX_PAYLOAD', message: 'invalid configuration: maxPayload (MAX_PAYLOAD) must be between 256 and 67108864, got 0' }
  )
  t.equal(app.hasDecorator('realtime'), false, 'nothing was set up')
})
