// The client library over server-sent events (client/sse-socket.ts) in Node, with no WebSocket at all:
// the stream of GET /sse read with fetch, requests over the HTTP API, recovery across a drained and
// restarted node (shared Redis), 4003, a refused token, refresh by reopening, a forbidden topic, and the
// fallback from a websocket that cannot open. Real servers on real ports; nothing is mocked.
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { RealtimeClient, RealtimeError, type ClientOptions, type Message, type Subscription } from '../client/index.js'
import { buildApp } from '../src/app.js'
import { configWith, type Config } from '../src/config.js'
import { mint, SECRET } from './auth-tokens.js'
import { record } from './fixtures/client.js'
import { freePort, REDIS_URL, redisPrefix } from './fixtures/cluster.js'
import { spawnServer } from './fixtures/spawn.js'
import { eventually, getJson, postJson } from './helpers.js'

const API_KEY = 'admin-key-for-client-sse-tests'
const admin = { 'x-api-key': API_KEY }

interface Server { app: FastifyInstance, url: string, wsUrl: string }

/**
 * The standalone app on `port` (0: a free one), closed when the test ends. Node's fetch (undici) opens a
 * spare connection to the server after a stream is aborted; it never sends a request, so the close's
 * idle-connection sweep misses it and app.close() would wait for the keep-alive timeout (72 s): cut it.
 */
async function startServer (t: Test, overrides: Partial<Config> = {}, port = 0, setup?: (app: FastifyInstance) => void): Promise<Server> {
  const app = await buildApp(configWith({ logLevel: 'silent', port, ...overrides }))
  setup?.(app)
  t.teardown(async () => {
    const sweep = setTimeout(() => app.server.closeAllConnections(), 1000)
    await app.close()
    clearTimeout(sweep)
  })
  await app.listen({ host: '127.0.0.1', port })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  return { app, url, wsUrl: `${url.replace('http', 'ws')}/ws` }
}

/** An SSE-only client with short reconnect delays, closed when the test ends. */
function sseClient (t: Test, wsUrl: string, options: ClientOptions = {}): RealtimeClient {
  const client = new RealtimeClient(wsUrl, { transports: ['sse'], minReconnectDelay: 20, maxReconnectDelay: 200, ...options })
  t.teardown(() => client.close())
  return client
}

/** Every message of `sub`, as [offset, data]. */
function collect (sub: Subscription<any>): Array<Message<any>> {
  const messages: Array<Message<any>> = []
  sub.on('message', message => messages.push(message))
  return messages
}

async function publish (url: string, topic: string, data: unknown, headers: Record<string, string> = {}): Promise<{ epoch: string, offset: number }> {
  const { status, body } = await postJson(`${url}/api/publish`, { topic, data }, headers)
  if (status !== 200) throw new Error(`POST /api/publish answered ${status}: ${JSON.stringify(body)}`)
  return body
}

async function rejection (promise: Promise<unknown>): Promise<RealtimeError> {
  return await promise.then(() => { throw new Error('resolved, expected a rejection') }, (error: RealtimeError) => error)
}

t.test('transports [sse] on Node 20 without any WebSocket: subscribe, receive, publish, history, presence, rpc', async t => {
  t.equal((globalThis as { WebSocket?: unknown }).WebSocket, undefined, 'Node 20: no global WebSocket')
  t.throws(() => new RealtimeClient('ws://127.0.0.1:1/ws', { transports: ['websocket'] }), /no WebSocket available/, 'websocket only cannot work here')
  const server = await startServer(t, { presence: true }, 0, app => {
    app.realtime.rpc('echo', ({ data, identity }) => ({ echo: data, user: identity.user }))
  })
  const client = sseClient(t, server.wsUrl)
  const log = record(client)
  const welcome = await client.connect()
  t.equal(client.transport, 'sse')
  t.equal(client.state, 'connected')
  t.match(welcome, { connectionId: '', user: null, expiresAt: null }, 'no subscription yet: no stream, a welcome of the client\'s own')

  const a = client.subscribe('news.a')
  const b = client.subscribe('news.b')
  const fromA = collect(a)
  const fromB = collect(b)
  t.match(await a.ready(), { epoch: '~~~~~~~~', offset: 0, recovered: false }, 'a.ready() resolves with the first subscribed')
  t.match(await b.ready(), { offset: 0 })
  t.equal(a.state, 'subscribed')
  t.not(client.welcome?.connectionId, '', 'the stream\'s own welcome replaces it')
  t.match(client.welcome, { node: String, user: null, heartbeat: Number })

  // Publications made over HTTP by someone else reach the subscriptions, each on its topic.
  const first = await publish(server.url, 'news.a', { n: 1 })
  await publish(server.url, 'news.b', { n: 'b1' })
  // Through the client: over HTTP too, with the same answer as over the websocket.
  const second = await client.publish('news.a', { n: 2 })
  t.match(second, { topic: 'news.a', epoch: first.epoch, offset: 2 })
  await eventually('both messages of news.a', () => fromA.length === 2)
  await eventually('the message of news.b', () => fromB.length === 1)
  t.same(fromA.map(m => [m.offset, m.data]), [[1, { n: 1 }], [2, { n: 2 }]])
  t.match(fromA[0], { type: 'message', topic: 'news.a', epoch: first.epoch, ts: Number })
  t.same(fromB.map(m => [m.topic, m.offset, m.data]), [['news.b', 1, { n: 'b1' }]])
  t.same(a.position, { epoch: first.epoch, offset: 2 })

  const history = await client.history('news.a', { since: { epoch: first.epoch, offset: 1 } })
  t.match(history, { epoch: first.epoch, offset: 2 })
  t.same(history.publications.map(p => [p.offset, p.data]), [[2, { n: 2 }]], 'history since offset 1: offset 2 only')
  t.equal((await client.history('news.a', { limit: 1 })).publications.length, 1, 'limit')
  t.same(await client.presence('news.a'), { connections: 1, users: [] }, 'the stream is the one subscriber')
  t.match(await client.rpc('echo', { ping: 1 }), { echo: { ping: 1 }, user: null })
  const unknown = await rejection(client.rpc('no.such.method'))
  t.ok(unknown instanceof RealtimeError)
  t.equal(unknown.code, 'not_found', 'an HTTP refusal carries the protocol code')
  t.equal((await rejection(client.publish('not..a.topic', 1))).code, 'bad_request')

  // Unsubscribing reopens the stream without the topic: nothing more arrives on it, the other goes on.
  a.unsubscribe()
  t.equal(a.state, 'unsubscribed')
  await eventually('the server holds one subscriber of news.b only', async () =>
    (await getJson(`${server.url}/api/topics/news.a/presence`)).body.connections === 0)
  await publish(server.url, 'news.a', { n: 3 })
  await publish(server.url, 'news.b', { n: 'b2' })
  await eventually('news.b goes on', () => fromB.length === 2)
  t.equal(fromA.length, 2, 'nothing after unsubscribe')
  t.same(log.disconnects, [], 'reopening the stream is not a disconnect')
  t.same(log.welcomes.length, 1, 'nor a second connection for the application')

  // And with none left, no stream at all: the server sees no subscriber.
  b.unsubscribe()
  await eventually('no stream left', async () =>
    (await getJson(`${server.url}/api/topics/news.b/presence`)).body.connections === 0)
  t.equal(client.state, 'connected', 'still connected: requests go over HTTP')
  t.match(await client.publish('news.b', 'still here'), { offset: 3 })

  client.close()
  t.equal(client.state, 'closed')
  t.equal(client.transport, null)
})

t.test('sub.ready() rejects when the subscription is refused or unsubscribed first; a forbidden topic leaves the others alone', async t => {
  const server = await startServer(t, { jwtSecret: SECRET })
  const client = sseClient(t, server.wsUrl, { token: mint({ sub: 'alice' }) })
  await client.connect()
  const room = client.subscribe('public.room')
  const messages = collect(room)
  await room.ready()
  const streamBefore = client.welcome?.connectionId

  // Subscribed in one tick with an allowed one: the refusal names the topic, only that one is refused.
  const secret = client.subscribe('private.room')
  const other = client.subscribe('public.other')
  const refused = await rejection(secret.ready())
  t.equal(refused.code, 'forbidden')
  t.match(refused.message, '"private.room"')
  t.equal(secret.state, 'unsubscribed')
  await other.ready()
  t.not(client.welcome?.connectionId, streamBefore, 'the stream was reopened')
  await server.app.realtime.publish('public.room', 'after the refusal')
  await eventually('public.room goes on', () => messages.some(m => m.data === 'after the refusal'))

  // An invalid topic name: bad_request, found by its place in the query.
  const invalid = client.subscribe('public..bad')
  t.equal((await rejection(invalid.ready())).code, 'bad_request')

  const early = client.subscribe('public.early')
  early.unsubscribe()
  t.equal((await rejection(early.ready())).code, 'closed', 'unsubscribed before subscribed')
  t.equal(client.state, 'connected')
})

t.test('a node drained (1001) and restarted on the same port: exactly the missed publications, once, in order', async t => {
  const port = await freePort()
  const shared: Partial<Config> = { redisUrl: REDIS_URL, redisPrefix: redisPrefix(t), heartbeatInterval: 500 }
  const start = async (listenOn: number): Promise<Server> => await startServer(t, shared, listenOn)
  const a = await start(port)
  const b = await start(0)
  const client = sseClient(t, `ws://127.0.0.1:${port}/ws`)
  const log = record(client)
  await client.connect()
  const x = client.subscribe('restart.x')
  const y = client.subscribe('restart.y')
  const fromX = collect(x)
  const fromY = collect(y)
  const resets: unknown[] = []
  x.on('reset', reset => resets.push(reset))
  y.on('reset', reset => resets.push(reset))
  await Promise.all([x.ready(), y.ready()])

  for (const n of [1, 2, 3]) await publish(a.url, 'restart.x', n)
  await publish(a.url, 'restart.y', 'y1')
  await eventually('1..3 arrived', () => fromX.length === 3 && fromY.length === 1)

  await a.app.close()
  await eventually('the drain\'s close event', () => log.disconnects.length > 0)
  t.match(log.disconnects[0], { code: 1001, reason: 'server shutting down', reconnect: true }, 'the close event\'s code, not 1006')
  // Published while the client's node is down, through another node on the same Redis.
  for (const n of [4, 5, 6]) await publish(b.url, 'restart.x', n)
  await publish(b.url, 'restart.y', 'y2')

  const restarted = await start(port)
  await eventually('reconnected', () => client.state === 'connected' && log.welcomes.length === 2, 10000)
  for (const n of [7, 8, 9]) await publish(restarted.url, 'restart.x', n)
  await eventually('1..9 arrived', () => fromX.length === 9 && fromY.length === 2, 10000)

  t.same(fromX.map(m => [m.offset, m.data]), [1, 2, 3, 4, 5, 6, 7, 8, 9].map(n => [n, n]), 'offsets 1..9 of restart.x, once each, in order')
  t.same(fromY.map(m => m.data), ['y1', 'y2'], 'and restart.y\'s missed one')
  t.equal(new Set(fromX.map(m => m.epoch)).size, 1, 'one epoch')
  t.same(resets, [], 'no continuity lost')
  t.equal(client.transport, 'sse')
})

t.test('POST /api/disconnect (4003) ends an SSE client for good; a refused token too', async t => {
  const server = await startServer(t, { jwtSecret: SECRET, apiKey: API_KEY })
  const client = sseClient(t, server.wsUrl, { token: mint({ sub: 'alice' }) })
  const log = record(client)
  await client.connect()
  await client.subscribe('public.kick').ready()
  t.equal((await postJson(`${server.url}/api/disconnect`, { user: 'alice' }, admin)).status, 200)
  await eventually('closed', () => client.state === 'closed')
  t.match(log.disconnects, [{ code: 4003, reconnect: false }])
  t.equal(client.transport, null)

  // A token the server refuses: the stream's 401 is the websocket's 4401, final without getToken.
  const refused = sseClient(t, server.wsUrl, { token: 'garbage' })
  const refusedLog = record(refused)
  const sub = refused.subscribe('public.kick')
  const error = await rejection(refused.connect())
  t.equal(error.code, 'unauthorized')
  t.equal(refused.state, 'closed')
  t.match(refusedLog.disconnects, [{ code: 4401, reason: /^malformed token/, reconnect: false }])
  t.equal(sub.state, 'subscribing', 'the subscription waits for a later connect()')
})

t.test('with getToken: the stream is reopened with a fresh token before expiry, without a disconnect', async t => {
  const server = await startServer(t, { jwtSecret: SECRET })
  let minted = 0
  // Three seconds of life: the client refreshes a third of it early.
  const getToken = (): string => { minted++; return mint({ sub: 'alice', jti: `t${minted}`, exp: Math.floor(Date.now() / 1000) + 3 }) }
  const client = sseClient(t, server.wsUrl, { getToken })
  const log = record(client)
  const sub = client.subscribe('public.fresh')
  const messages = collect(sub)
  await client.connect()
  await sub.ready()
  const firstStream = client.welcome
  t.match(firstStream, { user: 'alice', expiresAt: Number })
  await eventually('a refresh reopened the stream', () => client.welcome?.connectionId !== firstStream?.connectionId, 10000)
  t.ok((client.welcome?.expiresAt ?? 0) > (firstStream?.expiresAt ?? 0), 'with a later expiry')
  t.ok(minted >= 2, 'getToken was asked again')
  await server.app.realtime.publish('public.fresh', 'after the refresh')
  await eventually('delivered on the new stream', () => messages.length === 1)
  t.same(log.disconnects, [], 'no disconnect: the token never expired on an open stream')
})

t.test('fallback: a websocket that cannot open, twice in a row, makes the client use SSE', async t => {
  const server = await startServer(t)
  await t.test('a WebSocket constructor that throws: SSE at once', async t => {
    let built = 0
    class Blocked { constructor () { built++; throw new Error('blocked by policy') } }
    const client = new RealtimeClient(server.wsUrl, { WebSocket: Blocked as any, minReconnectDelay: 20, maxReconnectDelay: 100 })
    t.teardown(() => client.close())
    const sub = client.subscribe('fallback.a')
    await client.connect()
    t.equal(client.transport, 'sse')
    t.equal(built, 1)
    await sub.ready()
    await server.app.realtime.publish('fallback.a', 1)
    await eventually('the message over SSE', () => sub.position?.offset === 1)
  })
  await t.test('an upgrade that never opens (a proxy that drops it): SSE after two attempts', async t => {
    const deadPort = await freePort()
    const attempts: string[] = []
    // The `ws` package, pointed at a port where nothing listens: closed with 1006 before `open`.
    class Unreachable extends WebSocket {
      constructor (url: string, protocols?: string | string[], options?: WebSocket.ClientOptions) {
        attempts.push(url)
        super(url.replace(/:\d+\//, `:${deadPort}/`), protocols, options)
      }
    }
    const client = new RealtimeClient(server.wsUrl, { WebSocket: Unreachable as any, minReconnectDelay: 20, maxReconnectDelay: 100 })
    t.teardown(() => client.close())
    const log = record(client)
    await client.connect()
    t.equal(client.transport, 'sse')
    t.equal(attempts.length, 2, 'two websocket attempts, then SSE')
    t.match(log.disconnects, [{ code: 1006, reconnect: true }, { code: 1006, reconnect: true }])
    t.match(await client.publish('fallback.b', 'over http'), { offset: 1 })
    // It stays on SSE until close(); a connect() after close() tries the websocket again.
    client.close()
    const again = client.connect()
    await again
    t.equal(client.transport, 'sse')
    t.equal(attempts.length, 4, 'two more websocket attempts after close() + connect()')
  })
  await t.test('a websocket that worked once does not fall back when the server goes away', async t => {
    const port = await freePort()
    const { app } = await startServer(t, {}, port)
    const client = new RealtimeClient(`ws://127.0.0.1:${port}/ws`, { WebSocket, minReconnectDelay: 20, maxReconnectDelay: 50 })
    t.teardown(() => client.close())
    const log = record(client)
    await client.connect()
    t.equal(client.transport, 'websocket')
    await app.close()
    await eventually('several failed reconnects', () => log.disconnects.length >= 4)
    await startServer(t, {}, port)
    await eventually('connected again', () => client.state === 'connected', 10000)
    t.equal(client.transport, 'websocket', 'still the websocket')
  })
})

t.test('without getToken the server ends the stream at expiry (4001); the static token is then refused (4401): closed', async t => {
  const server = await startServer(t, { jwtSecret: SECRET })
  const client = sseClient(t, server.wsUrl, { token: mint({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 2 }) })
  const log = record(client)
  await client.connect()
  await client.subscribe('public.expiring').ready()
  await eventually('closed', () => client.state === 'closed', 10000)
  t.match(log.disconnects, [
    { code: 4001, reconnect: true },
    { code: 4401, reason: /expired/, reconnect: false }
  ], 'the close event\'s 4001, then the refused reconnect')
})

t.test('a stalled server: its heartbeat comments stop, the client drops the stream and reconnects', async t => {
  const node = spawnServer(t, { PORT: '0', HEARTBEAT_INTERVAL: '300' })
  const [, url] = await node.waitFor(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/)
  t.teardown(() => { node.child.kill('SIGCONT') })
  const client = sseClient(t, `${url}/ws`, { timeout: 500 })
  const log = record(client)
  await client.connect()
  const sub = client.subscribe('stall.x')
  const messages = collect(sub)
  await sub.ready()
  t.equal(client.welcome?.heartbeat, 300)
  node.child.kill('SIGSTOP')
  await eventually('the silence was noticed', () => log.disconnects.length > 0, 10000)
  t.match(log.disconnects[0], { code: 1006, reason: 'the server did not answer a ping', reconnect: true })
  node.child.kill('SIGCONT')
  await eventually('connected again', () => client.state === 'connected' && sub.state === 'subscribed', 10000)
  await publish(url, 'stall.x', 'after')
  await eventually('delivered', () => messages.length === 1)
})

t.test('sub.ready() over the websocket too', async t => {
  const server = await startServer(t)
  const client = new RealtimeClient(server.wsUrl, { WebSocket })
  t.teardown(() => client.close())
  const sub = client.subscribe('ready.ws')
  const messages = collect(sub)
  await client.connect()
  t.equal(client.transport, 'websocket')
  t.match(await sub.ready(), { offset: 0, recovered: false })
  await client.publish('ready.ws', 'mine')
  await eventually('my own publication', () => messages.length === 1)
})

t.test('a subscription carried into a reopened stream that cannot be resumed gets subscribed (recovered false) and reset', async t => {
  const server = await startServer(t)
  const client = sseClient(t, server.wsUrl)
  await client.connect()
  const kept = client.subscribe('carry.kept')
  const acks: unknown[] = []
  const resets: unknown[] = []
  kept.on('subscribed', event => acks.push(event))
  kept.on('reset', reset => resets.push(reset))
  const messages = collect(kept)
  await kept.ready()
  const live = await server.app.realtime.publish('carry.kept', 1)
  await eventually('delivered', () => messages.length === 1)
  t.same(kept.position, { epoch: live.epoch, offset: 1 })

  // A position the server can no longer serve (as after HISTORY_TTL): the next reopen cannot resume it.
  kept.position = { epoch: 'gone-epoch', offset: 7 }
  await client.subscribe('carry.new').ready()
  await eventually('the carried-over subscription heard of it', () => resets.length === 1)
  t.same(resets, [{ reason: 'not_recovered' }])
  t.match(acks, [{ recovered: false }, { epoch: live.epoch, offset: 1, recovered: false }])
  t.same(kept.position, { epoch: live.epoch, offset: 1 }, 'live again from the stream\'s position')
  await server.app.realtime.publish('carry.kept', 2)
  await eventually('and delivers on', () => messages.length === 2)
  t.same(messages.map(m => m.offset), [1, 2])
})
