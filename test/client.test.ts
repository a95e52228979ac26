// The client library (fastify-realtime/client, docs/client.md) against real servers: connect,
// subscribe, publish, history, presence, join/leave, request errors and timeouts, close() and its
// timers, reconnect with recovery, and the browser bundle served at GET /client.js.
import t, { type Test } from 'tap'
import * as esbuild from 'esbuild'
import type { FastifyInstance } from 'fastify'
import { once } from 'node:events'
import { gzipSync } from 'node:zlib'
import WebSocket, { WebSocketServer } from 'ws'
import { RealtimeClient, RealtimeError, type Message } from '../client/index.js'
import type { Emitter } from '../client/emitter.js'
import { kRealtimeNode } from '../plugins/node.js'
import { buildApp } from '../src/app.js'
import { configWith } from '../src/config.js'
import { ServerClose } from '../src/core/protocol.js'
import { mint, nowSeconds, SECRET } from './auth-tokens.js'
import { newClient, record } from './fixtures/client.js'
import { eventually, postJson, startServer, within, type Frame } from './helpers.js'

/** The next `event` from `emitter` that matches; subscribe before causing it. */
async function nextEvent<E extends object, K extends keyof E> (emitter: Emitter<E>, event: K, match: (value: E[K]) => boolean = () => true, ms = 10000): Promise<E[K]> {
  return await new Promise((resolve, reject) => {
    const listener = (value: E[K]): void => {
      if (!match(value)) return
      clearTimeout(timer)
      emitter.off(event, listener)
      resolve(value)
    }
    const timer = setTimeout(() => {
      emitter.off(event, listener)
      reject(new Error(`no matching '${String(event)}' event within ${ms} ms`))
    }, ms)
    emitter.on(event, listener)
  })
}

const publishHttp = async (url: string, topic: string, data: unknown): Promise<Frame> => {
  const reply = await postJson(`${url}/api/publish`, { topic, data })
  if (reply.status !== 200) throw new Error(`publish answered ${reply.status}: ${JSON.stringify(reply.body)}`)
  return reply.body
}

/**
 * A `ws` server that welcomes every connection and then never answers anything: a hung server, which
 * a real one cannot be made into. `onFrame` sees what the client sends.
 */
async function silentServer (t: Test, onFrame: (frame: Frame, socket: WebSocket) => void = () => {}): Promise<{ url: string, wss: WebSocketServer, frames: Frame[] }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(wss, 'listening')
  const frames: Frame[] = []
  wss.on('connection', socket => {
    socket.send(JSON.stringify({ type: 'welcome', connectionId: `mock-${wss.clients.size}`, user: null, node: 'mock', heartbeat: 60000, expiresAt: null }))
    socket.on('message', data => {
      const frame = JSON.parse(String(data))
      frames.push(frame)
      onFrame(frame, socket)
    })
  })
  t.teardown(async () => {
    for (const socket of wss.clients) socket.terminate()
    await new Promise(resolve => wss.close(resolve))
  })
  const { port } = wss.address() as { port: number }
  return { url: `ws://127.0.0.1:${port}/ws`, wss, frames }
}

const activeTimeouts = (): number => process.getActiveResourcesInfo().filter(resource => resource === 'Timeout').length

t.test('connect() resolves with the welcome; state goes disconnected -> connecting -> connected', async t => {
  const server = await startServer(t, { nodeId: 'node-a' })
  const client = newClient(t, server.wsUrl)
  const log = record(client)
  t.equal(client.state, 'disconnected', 'a new client is disconnected')
  t.equal(client.welcome, null)
  const connectedEvent = nextEvent(client, 'connected')
  const welcome = await within(client.connect(), 5000, 'connect()')
  t.match(welcome, { connectionId: String, user: null, node: 'node-a', heartbeat: 25000, expiresAt: null })
  t.notOk('type' in welcome, 'the welcome is given without its frame type')
  t.equal(server.app[kRealtimeNode].hub.connections.size, 1, 'the server holds the connection')
  t.same(log.states, ['connecting', 'connected'])
  t.equal(client.state, 'connected')
  t.equal(client.welcome, welcome)
  t.equal(await connectedEvent, welcome, "'connected' carries the same welcome")
  t.equal(await client.connect(), welcome, 'connect() when connected resolves with the current welcome')
  t.same(log.states, ['connecting', 'connected'], 'and changes nothing')
})

t.test('subscribe, messages, publish and history on one topic', async t => {
  const server = await startServer(t)
  const client = newClient(t, server.wsUrl)
  await client.connect()
  const sub = client.subscribe<{ n: number }>('news.sport')
  t.equal(sub.state, 'subscribing')
  const subscribed = await nextEvent(sub, 'subscribed')
  t.match(subscribed, { epoch: String, offset: 0, recovered: false })
  t.equal(sub.state, 'subscribed')
  t.same(sub.position, { epoch: subscribed.epoch, offset: 0 }, 'the position is the ack\'s')
  // A topic without a stream: the empty position; its first publication starts the epoch (protocol §1).
  t.equal(subscribed.epoch, '~~~~~~~~')

  const messages: Array<Message<{ n: number }>> = []
  sub.on('message', message => messages.push(message))
  const { epoch } = await publishHttp(server.url, 'news.sport', { n: 1 })
  t.not(epoch, subscribed.epoch)
  for (const n of [2, 3]) t.same(await publishHttp(server.url, 'news.sport', { n }), { topic: 'news.sport', epoch, offset: n })
  await eventually('three messages', () => messages.length === 3)
  t.same(messages.map(m => m.offset), [1, 2, 3], 'in offset order')
  for (const [i, message] of messages.entries()) {
    t.match(message, { topic: 'news.sport', data: { n: i + 1 }, epoch, offset: i + 1, ts: Number })
  }
  t.same(sub.position, { epoch, offset: 3 }, 'the position follows the messages')

  // client.publish: resolves with the position; the subscriber gets it too.
  t.same(await client.publish('news.sport', { n: 4 }), { topic: 'news.sport', epoch, offset: 4 })
  await eventually('the fourth message', () => messages.length === 4)
  t.match(messages[3], { topic: 'news.sport', data: { n: 4 }, offset: 4 })

  const history = await client.history<{ n: number }>('news.sport', { limit: 2 })
  t.match(history, { epoch, offset: 4 })
  t.same(history.publications.map(m => [m.offset, m.data.n]), [[3, 3], [4, 4]], 'the newest two, oldest first')
  t.match(history.publications[0], { topic: 'news.sport', epoch, ts: Number })
  const since = await client.history('news.sport', { since: { epoch, offset: 1 } })
  t.same(since.publications.map(m => m.offset), [2, 3, 4], 'history since a position')
  const empty = await client.history('nothing.here')
  t.match(empty, { epoch: String, offset: 0, publications: [] }, 'a topic without publications')
})

t.test('presence: {connections, users} with presence on; not_found when it is off', async t => {
  const server = await startServer(t, { jwtSecret: SECRET, presence: true })
  const alice = newClient(t, server.wsUrl, { token: mint({ sub: 'alice' }) })
  const bob = newClient(t, server.wsUrl, { token: mint({ sub: 'bob' }) })
  await Promise.all([alice.connect(), bob.connect()])
  const subs = [alice.subscribe('public.room'), bob.subscribe('public.room')]
  await Promise.all(subs.map(async sub => await nextEvent(sub, 'subscribed')))
  t.same(await alice.presence('public.room'), {
    connections: 2,
    users: [{ user: 'alice', connections: 1 }, { user: 'bob', connections: 1 }]
  })
  t.same(await bob.presence('public.empty'), { connections: 0, users: [] })

  const off = await startServer(t)
  const client = newClient(t, off.wsUrl)
  await client.connect()
  const error = await client.presence('public.room').then(() => null, (error: unknown) => error)
  t.type(error, RealtimeError)
  t.match(error, { code: 'not_found' })
  t.equal(client.state, 'connected', 'a rejected request leaves the connection up')
})

t.test('join and leave events reach the subscription (joinLeave)', async t => {
  const server = await startServer(t, { jwtSecret: SECRET, joinLeave: true })
  const alice = newClient(t, server.wsUrl, { token: mint({ sub: 'alice' }) })
  const bob = newClient(t, server.wsUrl, { token: mint({ sub: 'bob' }) })
  const [aliceWelcome, bobWelcome] = await Promise.all([alice.connect(), bob.connect()])
  const aliceSub = alice.subscribe('public.chat')
  // The server sends a subscriber its own join right after the ack, usually in the same TCP read.
  const ownJoin = await nextEvent(aliceSub, 'join')
  t.match(ownJoin, { topic: 'public.chat', user: 'alice', connectionId: aliceWelcome.connectionId }, 'its own join, right after the ack')

  const bobJoin = nextEvent(aliceSub, 'join', event => event.user === 'bob')
  const bobSub = bob.subscribe('public.chat')
  const bobSubscribed = nextEvent(bobSub, 'subscribed')
  t.match(await bobJoin, { topic: 'public.chat', user: 'bob', connectionId: bobWelcome.connectionId })
  await bobSubscribed
  const bobLeave = nextEvent(aliceSub, 'leave')
  bobSub.unsubscribe()
  t.match(await bobLeave, { topic: 'public.chat', user: 'bob', connectionId: bobWelcome.connectionId })
})

t.test('a join in the same TCP read as the subscribe ack is delivered', async t => {
  // Forced with a mock: the ack and the join are written in one corked write, so that they surely
  // arrive together. A client that handled the ack on a later tick (a promise) would drop the join.
  const mock = await silentServer(t, (frame, socket) => {
    if (frame.type !== 'subscribe') return
    const tcp = (socket as unknown as { _socket: import('node:net').Socket })._socket
    tcp.cork()
    socket.send(JSON.stringify({ type: 'ack', id: frame.id, topic: frame.topic, epoch: 'mockepoc', offset: 0 }))
    socket.send(JSON.stringify({ type: 'join', topic: frame.topic, user: 'carol', connectionId: 'c-1' }))
    socket.send(JSON.stringify({ type: 'message', topic: frame.topic, epoch: 'mockepoc', offset: 1, ts: 1, data: 'first' }))
    tcp.uncork()
  })
  const client = newClient(t, mock.url)
  await client.connect()
  const sub = client.subscribe('room.1')
  const joins: unknown[] = []
  const messages: unknown[] = []
  sub.on('join', event => joins.push(event))
  sub.on('message', message => messages.push(message))
  await nextEvent(sub, 'subscribed')
  await eventually('the join and the message', () => joins.length === 1 && messages.length === 1)
  t.match(joins, [{ topic: 'room.1', user: 'carol', connectionId: 'c-1' }], 'the join')
  t.match(messages, [{ topic: 'room.1', offset: 1, data: 'first' }], 'and the message after it')
})

t.test('rejections carry .code: bad_request for an invalid topic', async t => {
  const server = await startServer(t)
  const client = newClient(t, server.wsUrl)
  await client.connect()
  const error = await client.publish('not a topic!', 1).then(() => null, (error: unknown) => error)
  t.type(error, RealtimeError)
  t.match(error, { code: 'bad_request', message: String })
  await t.rejects(client.history('..'), { code: 'bad_request' })
  t.equal(client.state, 'connected')
  t.match(await client.publish('fine.topic', 1), { offset: 1 }, 'the connection still works')
})

t.test('ACL: forbidden publish and subscribe; a refused subscription is removed and can be asked again', async t => {
  const server = await startServer(t, { jwtSecret: SECRET })
  // Default ACL: alice reads public.> and user.alice.>, writes user.alice.>. Each (re)connect gets
  // a token with the claims of the moment.
  let claims: Record<string, unknown> = { sub: 'alice' }
  const client = newClient(t, server.wsUrl, { getToken: () => mint(claims) })
  await client.connect()
  await t.rejects(client.publish('public.news', 1), { code: 'forbidden' }, 'publish outside the ACL')
  t.match(await client.publish('user.alice.notes', 1), { topic: 'user.alice.notes', offset: 1 }, 'inside it works')

  const sub = client.subscribe('user.bob.inbox')
  const subscribed: unknown[] = []
  sub.on('subscribed', event => subscribed.push(event))
  const error = await nextEvent(sub, 'error')
  t.type(error, RealtimeError)
  t.match(error, { code: 'forbidden' })
  t.equal(sub.state, 'unsubscribed', 'the refused subscription is over')
  t.same(subscribed, [])
  t.equal(server.app[kRealtimeNode].hub.counts.subscriptions, 0)

  // Later, with a token that allows it (a reconnect fetches a new one), the same topic can be asked again.
  claims = { sub: 'alice', topics: { subscribe: ['user.bob.inbox'] } }
  const reconnected = nextEvent(client, 'connected')
  for (const connection of server.app[kRealtimeNode].hub.connections) connection.terminate('test: the connection drops')
  await reconnected
  t.equal(sub.state, 'unsubscribed', 'a reconnect does not bring a refused subscription back')
  const again = client.subscribe('user.bob.inbox')
  t.not(again, sub, 'a new subscription')
  t.match(await nextEvent(again, 'subscribed'), { offset: 0, recovered: false })
  const message = nextEvent(again, 'message')
  await postJson(`${server.url}/api/publish`, { topic: 'user.bob.inbox', data: 'hi' }, { authorization: `Bearer ${mint({ sub: 'x', admin: true })}` })
  t.match(await message, { topic: 'user.bob.inbox', data: 'hi' })
})

t.test('subscribing twice to one topic throws; after unsubscribe it is allowed again', async t => {
  const server = await startServer(t)
  const client = newClient(t, server.wsUrl)
  await client.connect()
  const sub = client.subscribe('dup.topic')
  t.throws(() => client.subscribe('dup.topic'), { code: 'bad_request', message: /already subscribed/ })
  await nextEvent(sub, 'subscribed')
  t.throws(() => client.subscribe('dup.topic'), { code: 'bad_request' }, 'also once subscribed')
  sub.unsubscribe()
  const again = client.subscribe('dup.topic')
  t.match(await nextEvent(again, 'subscribed'), { offset: 0 })
})

t.test('requests time out with code timeout when the server never answers', async t => {
  const mock = await silentServer(t)
  const client = newClient(t, mock.url, { timeout: 200 })
  const welcome = await client.connect()
  t.equal(welcome.heartbeat, 60000)
  const results = await Promise.allSettled([client.publish('a.b', 1), client.history('a.b'), client.presence('a.b')])
  for (const result of results) {
    t.equal(result.status, 'rejected')
    if (result.status === 'rejected') {
      t.type(result.reason, RealtimeError)
      t.match(result.reason, { code: 'timeout', message: /no reply/ })
    }
  }
  t.same(mock.frames.map(frame => frame.type), ['publish', 'history', 'presence'], 'the requests were sent')
  t.equal(client.state, 'connected', 'a timed-out request does not drop the connection')
})

t.test('requests made while disconnected are sent once connected', async t => {
  const server = await startServer(t)
  const client = newClient(t, server.wsUrl)
  const published = client.publish('early.bird', { hello: 1 })
  const history = client.history('early.bird')
  t.equal(client.state, 'disconnected')
  t.equal(server.app[kRealtimeNode].hub.connections.size, 0)
  await client.connect()
  const result = await published
  t.match(result, { topic: 'early.bird', epoch: String, offset: 1 })
  t.match(await history, { epoch: result.epoch }, 'the history request was sent too')
})

t.test('a request in flight when the connection drops rejects with disconnected; the client reconnects', async t => {
  const server = await startServer(t)
  const client = newClient(t, server.wsUrl)
  const log = record(client)
  const first = await client.connect()
  const inFlight = client.publish('drop.topic', 1)
  // Cut the server's side before it can read the request: no reply can ever come.
  for (const connection of server.app[kRealtimeNode].hub.connections) connection.terminate('test: the connection drops')
  const error = await inFlight.then(() => null, (error: unknown) => error)
  t.type(error, RealtimeError)
  t.match(error, { code: 'disconnected' })
  t.match(log.disconnects[0], { code: 1006, reconnect: true })
  await eventually('reconnected', () => client.state === 'connected' && log.welcomes.length === 2)
  t.not(client.welcome?.connectionId, first.connectionId, 'a new connection')
  t.match(await client.publish('drop.topic', 2), { topic: 'drop.topic' }, 'requests work again')
})

t.test('unsubscribe stops delivery and leaves the server\'s presence', async t => {
  const server = await startServer(t, { presence: true })
  const client = newClient(t, server.wsUrl)
  await client.connect()
  const sub = client.subscribe('leaving.topic')
  const marker = client.subscribe('marker.topic')
  await Promise.all([nextEvent(sub, 'subscribed'), nextEvent(marker, 'subscribed')])
  const received: unknown[] = []
  sub.on('message', message => received.push(message))
  await publishHttp(server.url, 'leaving.topic', 'before')
  await eventually('the first message', () => received.length === 1)
  t.equal(server.app[kRealtimeNode].hub.counts.subscriptions, 2)
  t.match(await client.presence('leaving.topic'), { connections: 1 })

  sub.unsubscribe()
  t.equal(sub.state, 'unsubscribed')
  await eventually('the server dropped the subscription', () => server.app[kRealtimeNode].hub.counts.subscriptions === 1)
  t.match(await client.presence('leaving.topic'), { connections: 0 }, 'presence dropped it')
  await publishHttp(server.url, 'leaving.topic', 'after')
  // The marker is published after it on the same connection: once it arrives, so would have the other.
  const markerMessage = nextEvent(marker, 'message')
  await publishHttp(server.url, 'marker.topic', 'marker')
  await markerMessage
  t.same(received.length, 1, 'nothing arrives after unsubscribe')
  t.equal(sub.state, 'unsubscribed')
})

t.test('close(): state closed, disconnected without reconnect, pending requests rejected, no timer left', async t => {
  const jwtServer = await startServer(t, { jwtSecret: SECRET })
  const silent = await silentServer(t)
  const doomed = await silentServer(t)
  const baseline = activeTimeouts()
  const long = { timeout: 60000, minReconnectDelay: 30000, maxReconnectDelay: 30000 }

  // A: connected, two subscriptions, liveness check and a refresh scheduled (token with exp).
  let tokens = 0
  let exp = 0
  const a = new RealtimeClient(jwtServer.wsUrl, { WebSocket, ...long, getToken: () => { tokens++; exp = nowSeconds() + 3600; return mint({ sub: 'alice', exp }) } })
  const aLog = record(a)
  const welcome = await a.connect()
  t.equal(welcome.expiresAt, exp * 1000, 'connected with an expiring token: a refresh is scheduled')
  const subs = [a.subscribe('public.one'), a.subscribe('user.alice.two')]
  await Promise.all(subs.map(async sub => await nextEvent(sub, 'subscribed')))
  // B: a request waiting for its reply.
  const b = new RealtimeClient(silent.url, { WebSocket, ...long })
  const bLog = record(b)
  await b.connect()
  const pending = b.publish('never.answered', 1)
  pending.catch(() => {})
  await eventually('the mock received the publish', () => silent.frames.length === 1)
  // C: waiting out a reconnect backoff after its server went away.
  const c = new RealtimeClient(doomed.url, { WebSocket, ...long })
  const cLog = record(c)
  await c.connect()
  for (const socket of doomed.wss.clients) socket.close(1001, 'going away')
  doomed.wss.close()
  await eventually('C is disconnected, in backoff', () => c.state === 'disconnected')
  t.match(cLog.disconnects[0], { code: 1001, reconnect: true })
  const cDisconnects = cLog.disconnects.length
  t.ok(activeTimeouts() >= baseline + 4, 'the clients hold timers before close() (the check below can fail)')

  for (const client of [a, b, c]) client.close()
  for (const client of [a, b, c]) t.equal(client.state, 'closed')
  t.same(aLog.disconnects, [{ code: 1000, reason: 'client closed', reconnect: false }])
  t.same(bLog.disconnects, [{ code: 1000, reason: 'client closed', reconnect: false }])
  t.notOk(cLog.disconnects.slice(cDisconnects).some(event => event.reconnect), 'C: nothing announces a reconnect')
  t.equal(cLog.states.at(-1), 'closed')
  t.equal(aLog.states.at(-1), 'closed')
  const error = await pending.then(() => null, (error: unknown) => error)
  t.match(error, { code: 'closed' }, 'the pending request rejects with closed')
  await t.rejects(b.publish('after.close', 1), { code: 'closed' }, 'a request after close() rejects at once')
  t.equal(tokens, 1, 'no refresh was due yet')
  await new Promise(resolve => setImmediate(resolve))
  // Sockets finish their close handshakes (ws keeps a timer meanwhile); nothing of the clients' stays.
  await eventually(`the Timeout count is back to ${baseline}`, () => activeTimeouts() <= baseline, 10000)
  t.pass('no timer left behind')
  await eventually('the server saw A and B go', () => jwtServer.app[kRealtimeNode].hub.connections.size === 0 && silent.wss.clients.size === 0)

  // connect() after close() starts again, and the kept subscriptions resume from their positions.
  t.teardown(() => a.close())
  const resubscribed = subs.map(async sub => await nextEvent(sub, 'subscribed'))
  await a.connect()
  t.equal(a.state, 'connected')
  for (const event of await Promise.all(resubscribed)) t.match(event, { offset: 0, recovered: true })
  t.equal(jwtServer.app[kRealtimeNode].hub.counts.subscriptions, 2)
})

t.test('reconnect after the server closes the socket with 1001: resubscribes with since and recovers what it missed', async t => {
  const server = await startServer(t)
  // Open mode ignores credentials; getToken is only the hook that holds the reconnect until the
  // missed publications exist.
  let release: () => void = () => {}
  let gate: Promise<void> = Promise.resolve()
  let tokenCalls = 0
  const client = newClient(t, server.wsUrl, { getToken: async () => { tokenCalls++; await gate; return 'ignored' } })
  const log = record(client)
  const first = await client.connect()
  const sub = client.subscribe('feed.live')
  const messages: Message[] = []
  sub.on('message', message => messages.push(message))
  const subscribedEvents: unknown[] = []
  sub.on('subscribed', event => subscribedEvents.push(event))
  await nextEvent(sub, 'subscribed')
  const { epoch } = await publishHttp(server.url, 'feed.live', 1)
  await publishHttp(server.url, 'feed.live', 2)
  await eventually('two messages', () => messages.length === 2)

  gate = new Promise(resolve => { release = resolve })
  const disconnected = nextEvent(client, 'disconnected')
  for (const connection of server.app[kRealtimeNode].hub.connections) connection.close(ServerClose.shuttingDown)
  t.match(await disconnected, { code: 1001, reason: 'server shutting down', reconnect: true })
  await eventually('the reconnect asked for a token', () => tokenCalls === 2)
  t.equal(sub.state, 'subscribing', 'the subscription waits for the next connection')
  await publishHttp(server.url, 'feed.live', 3)
  await publishHttp(server.url, 'feed.live', 4)
  const queued = client.publish('feed.queued', 'sent after the reconnect')
  const resubscribed = nextEvent(sub, 'subscribed')
  release()
  t.same(await resubscribed, { epoch, offset: 4, recovered: true }, 'resubscribed with since, recovered')
  t.match(await queued, { topic: 'feed.queued', offset: 1 }, 'a request made while disconnected went out on the new connection')
  await eventually('the missed messages', () => messages.length === 4)
  await publishHttp(server.url, 'feed.live', 5)
  await eventually('the live one', () => messages.length === 5)
  t.same(messages.map(m => [m.offset, m.data]), [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]], 'every offset once, in order')
  t.same(sub.position, { epoch, offset: 5 })
  t.equal(subscribedEvents.length, 2)
  t.not(client.welcome?.connectionId, first.connectionId)
  t.same(log.states, ['connecting', 'connected', 'disconnected', 'connecting', 'connected'])
})

t.test('after a server restart on the same port the client reconnects by itself; the new epoch is not recovered', async t => {
  const start = async (port: number): Promise<FastifyInstance> => {
    const app = await buildApp(configWith({ logLevel: 'silent', shutdownTimeout: 2000 }))
    t.teardown(() => app.close())
    await app.listen({ host: '127.0.0.1', port })
    return app
  }
  const first = await start(0)
  const { port } = first.server.address() as { port: number }
  const url = `http://127.0.0.1:${port}`
  const client = newClient(t, `ws://127.0.0.1:${port}/ws`, { maxReconnectDelay: 100 })
  const log = record(client)
  await client.connect()
  const sub = client.subscribe('restart.topic')
  const messages: Message[] = []
  const resets: unknown[] = []
  sub.on('message', message => messages.push(message))
  sub.on('reset', event => resets.push(event))
  const before = await nextEvent(sub, 'subscribed')
  await publishHttp(url, 'restart.topic', 'old')
  await eventually('the first message', () => messages.length === 1)

  const disconnected = nextEvent(client, 'disconnected')
  await first.close()
  t.match(await disconnected, { code: 1001, reconnect: true }, 'the drain closes with 1001')
  // Attempts against the closed port fail (1006) and back off; nothing is asserted about timing.
  await eventually('a failed attempt', () => log.disconnects.length >= 2)
  t.match(log.disconnects.slice(1), Array(log.disconnects.length - 1).fill({ reconnect: true }), 'each failure reconnects again')

  const resubscribed = nextEvent(sub, 'subscribed')
  const second = await start(port)
  const after = await resubscribed
  t.equal(client.state, 'connected', 'reconnected by itself')
  t.match(after, { offset: 0, recovered: false }, 'the new server cannot recover the old epoch')
  t.not(after.epoch, messages[0].epoch)
  t.equal(before.epoch, '~~~~~~~~', 'both subscribes found no stream: the empty position')
  t.same(resets, [{ reason: 'not_recovered' }], 'a resubscribe with since that was not recovered: reset')
  t.equal(second[kRealtimeNode].hub.counts.subscriptions, 1)
  await publishHttp(url, 'restart.topic', 'new')
  await eventually('the message from the new server', () => messages.length === 2)
  t.match(messages[1], { offset: 1, data: 'new' })
  t.not(messages[1].epoch, messages[0].epoch, 'the new server\'s own epoch')
  t.same(resets, [{ reason: 'not_recovered' }], 'and no second reset: offset 1 after the empty position')
})

t.test('GET /client.js serves the self-contained browser bundle', async t => {
  const server = await startServer(t)
  const response = await fetch(`${server.url}/client.js`)
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /^text\/javascript/)
  const etag = response.headers.get('etag')
  t.match(etag, /^"[^"]+"$/, 'an etag')
  t.match(response.headers.get('cache-control'), /max-age=\d+/, 'cacheable')
  const body = Buffer.from(await response.arrayBuffer())
  const gzipped = gzipSync(body).length
  t.ok(gzipped <= 6144, `gzipped ${gzipped} bytes, budget 6144`)

  const revalidated = await fetch(`${server.url}/client.js`, { headers: { 'if-none-match': etag ?? '' } })
  t.equal(revalidated.status, 304)
  t.equal((await revalidated.arrayBuffer()).byteLength, 0)
  t.equal((await fetch(`${server.url}/client.js`, { headers: { 'if-none-match': '"other"' } })).status, 200)

  // No import of any kind (esbuild parses it and lists them), so a page needs nothing else.
  const parsed = await esbuild.build({
    stdin: { contents: body.toString(), loader: 'js' }, bundle: true, write: false, metafile: true, format: 'esm', external: ['*'], logLevel: 'silent'
  })
  t.same(parsed.metafile.inputs['<stdin>'].imports, [], 'no import statements')
  const exported = Object.values(parsed.metafile.outputs)[0].exports
  t.ok(exported.includes('RealtimeClient'), `exports RealtimeClient (${exported.join(', ')})`)

  // And it works as it is: loaded from a data: URL (where no import could resolve), against the server.
  const bundle = await import(`data:text/javascript;base64,${body.toString('base64')}`) as { RealtimeClient: typeof RealtimeClient }
  t.type(bundle.RealtimeClient, 'function')
  const client = new bundle.RealtimeClient(server.wsUrl, { WebSocket })
  t.teardown(() => client.close())
  await client.connect()
  t.match(await client.publish('bundle.works', 1), { topic: 'bundle.works', offset: 1 })
})

t.test('unsubscribing while a refused subscribe waits for its retry: no error reaches the application', async t => {
  // The broker is down (`unavailable`): the client retries later. Unsubscribing meanwhile asks a
  // server that holds no subscription, whose bad_request answer is expected, not news.
  const server = await silentServer(t, (frame, socket) => {
    if (frame.type === 'subscribe') socket.send(JSON.stringify({ type: 'error', id: frame.id, code: 'unavailable', message: 'the broker is unavailable' }))
    if (frame.type === 'unsubscribe') socket.send(JSON.stringify({ type: 'error', id: frame.id, code: 'bad_request', message: `not subscribed to "${String(frame.topic)}"` }))
    if (frame.type === 'publish') socket.send(JSON.stringify({ type: 'ack', id: frame.id, topic: frame.topic, epoch: 'e', offset: 1 }))
  })
  const client = newClient(t, server.url, { minReconnectDelay: 10000, maxReconnectDelay: 10000 })
  const clientErrors: string[] = []
  client.on('error', error => clientErrors.push(error.code))
  await client.connect()
  const sub = client.subscribe('news.down')
  const refused = await nextEvent(sub, 'error')
  t.equal(refused.code, 'unavailable', 'the subscription hears of the passing failure')
  t.equal(sub.state, 'subscribing', 'and waits to ask again')
  sub.unsubscribe()
  await eventually('the unsubscribe is answered', () => server.frames.some(frame => frame.type === 'unsubscribe'))
  // A marker request: its answer comes after the unsubscribe's, on the same socket.
  await client.publish('news.marker', 1)
  t.same(clientErrors, [], 'no client error for the expected refusal')
  t.equal(sub.state, 'unsubscribed')
})
