// Server-sent events (docs/protocol.md, "Server-sent events"): GET /sse?topic=a&topic=b, on
// real servers. The events of a stream (welcome, subscribed, message with a cursor id, join/leave,
// heartbeat comments), resuming with Last-Event-ID or ?lastEventId=, every refusal as a plain HTTP
// error before any stream, and a stream held to account like a websocket: caps shared with websockets,
// revocation, disconnect, token expiry, drain, the slow-consumer cut, metrics and log lines.
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import net from 'node:net'
import t, { type Test } from 'tap'
import { kRealtimeNode } from '../plugins/node.js'
import realtime from '../plugins/realtime.js'
import { buildApp } from '../src/app.js'
import { configWith, type Config } from '../src/config.js'
import type { Identity } from '../src/core/identity.js'
import type { SseConnection } from '../src/core/sse-connection.js'
import { decodeCursor, encodeCursor, type CursorPosition } from '../src/core/sse-cursor.js'
import { bearer, mint, nowSeconds, SECRET } from './auth-tokens.js'
import { openStream, refusedStream, requestStream, SseStream, streamUrl, type SseEvent } from './fixtures/sse.js'
import { privateRedis } from './fixtures/cluster.js'
import { connect, eventually, listen, postJson, refusedUpgrade, startServer, type Frame } from './helpers.js'

const API_KEY = 'sse-test-api-key'
const admin = { 'x-api-key': API_KEY }

function refusal (statusCode: number, message: string): Error {
  return Object.assign(new Error(message), { statusCode })
}

async function publish (url: string, topic: string, data: unknown, headers: Record<string, string> = {}): Promise<CursorPosition> {
  const response = await postJson(`${url}/api/publish`, { topic, data }, headers)
  if (response.status !== 200) throw new Error(`publish answered ${response.status}: ${JSON.stringify(response.body)}`)
  return { epoch: response.body.epoch, offset: response.body.offset }
}

async function scrape (url: string, headers: Record<string, string> = {}): Promise<string> {
  const response = await fetch(`${url}/metrics`, { headers })
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`)
  return await response.text()
}

/** The value of one sample line, e.g. sample(text, 'realtime_connections{transport="sse"}'). */
function sample (text: string, series: string): number {
  const line = text.split('\n').find(line => line.startsWith(`${series} `))
  return line === undefined ? NaN : Number(line.slice(series.length + 1))
}

/** The positions an event's id holds (fails the test when it is not a cursor of `count` topics). */
function cursorOf (t: Test, event: SseEvent, count: number): Array<CursorPosition | undefined> {
  t.type(event.id, 'string', `the ${event.event} event has an id`)
  const positions = decodeCursor(event.id as string, count)
  if (positions === undefined) throw new Error(`the id "${String(event.id)}" is not a cursor of ${count} topics`)
  return positions
}

const position = (frame: Frame): CursorPosition => ({ epoch: frame.epoch, offset: frame.offset })
const messageData = (stream: SseStream, topic?: string): unknown[] => stream.messages(topic).map(frame => frame.data)

/** An app with `setup` run before it listens (hooks), logging to `logStream` when given. */
async function serve (t: Test, overrides: Partial<Config>, setup: (app: FastifyInstance) => void = () => {}, logStream?: { write: (line: string) => void }): Promise<{ app: FastifyInstance, url: string, wsUrl: string }> {
  const app = await buildApp(configWith({ logLevel: logStream === undefined ? 'silent' : 'info', port: 0, ...overrides }), logStream === undefined ? {} : { logStream })
  setup(app)
  const url = await listen(t, app)
  return { app, url, wsUrl: `${url.replace('http', 'ws')}/ws` }
}

/** The server side of a stream, found by its welcome's connectionId. */
function serverConnection (app: FastifyInstance, stream: { welcome: any }): SseConnection {
  const found = [...app[kRealtimeNode].hub.connections].find(connection => connection.id === stream.welcome.connectionId)
  if (found === undefined) throw new Error('the stream is not in the hub')
  return found as SseConnection
}

t.test('a stream of three topics: welcome, subscribed with ids, messages with cursor ids in order, heartbeats', async t => {
  const server = await startServer(t, { heartbeatInterval: 100 })
  const topics = ['sse.a', 'sse.b', 'sse.c']
  const stream = await openStream(t, server.url, { topics })
  t.equal(stream.status, 200)
  t.match(stream.response.headers['content-type'], /^text\/event-stream/)
  t.match(stream.response.headers['cache-control'], /no-cache/)

  // The welcome is the websocket's welcome frame.
  const ws = await connect(t, server.wsUrl)
  t.match(stream.welcome, { type: 'welcome', user: null, heartbeat: 100, expiresAt: null })
  t.same(Object.keys(stream.welcome).sort(), Object.keys(ws.welcome).sort(), 'the same fields as the websocket welcome')
  t.not(stream.welcome.connectionId, ws.welcome.connectionId)
  t.equal(stream.events[0].event, 'welcome', 'the welcome comes first')

  await stream.until(() => stream.named('subscribed').length === 3, 'three subscribed events')
  const subscribed = stream.named('subscribed')
  t.same(subscribed.map(event => event.json.topic).sort(), [...topics].sort(), 'one subscribed event per topic')
  for (const event of subscribed) {
    t.match(event.json, { topic: String, epoch: String, offset: 0 })
    t.notOk('recovered' in event.json, 'no `recovered` without a cursor')
    t.notOk('type' in event.json || 'id' in event.json, 'the ack fields only')
    cursorOf(t, event, 3)
  }
  // The last subscribed event's id holds every topic's position.
  const expected = new Map<string, CursorPosition>(subscribed.map(event => [event.json.topic, position(event.json)]))
  t.same(cursorOf(t, subscribed[2], 3), topics.map(topic => expected.get(topic)), 'the last subscribed id holds every topic\'s position')

  await ws.request({ type: 'subscribe', topic: 'sse.a' })
  const sequence: Array<[string, number]> = [['sse.a', 1], ['sse.b', 2], ['sse.a', 3], ['sse.c', 4], ['sse.b', 5], ['sse.a', 6]]
  const published: CursorPosition[] = []
  for (const [topic, n] of sequence) published.push(await publish(server.url, topic, { n }))
  await stream.until(() => stream.named('message').length === sequence.length, 'every message')
  const messages = stream.named('message')
  t.same(messages.map(event => [event.json.topic, event.json.data.n]), sequence, 'every publication once, in order')
  messages.forEach((event, i) => {
    t.same(position(event.json), published[i], `message ${i + 1} is the publication`)
    expected.set(event.json.topic, position(event.json))
    t.same(cursorOf(t, event, 3), topics.map(topic => expected.get(topic)), `message ${i + 1}'s id holds every topic's latest position`)
  })
  t.same(expected.get('sse.a'), { epoch: published[5].epoch, offset: 3 })
  t.same(expected.get('sse.c'), { epoch: published[3].epoch, offset: 1 })

  // The data is the websocket's message frame, byte for byte.
  await ws.next(frame => frame.type === 'message' && frame.data.n === 6)
  t.same(messages.filter(event => event.json.topic === 'sse.a').map(event => event.data), ws.raw.filter(raw => raw.startsWith('{"type":"message"')), 'the same frames as the websocket got')

  // Heartbeats: comment lines, ignored by the parser, every HEARTBEAT_INTERVAL.
  const before = stream.comments.length
  await stream.until(() => stream.comments.length >= before + 2, 'two more heartbeat comments')
  t.ok(stream.comments.every(comment => comment === ''), 'the heartbeat is a bare `:` line')
  t.match(stream.text, /\n\n:\n\n/, 'a comment line between events')
  t.equal(stream.named('message').length, sequence.length, 'heartbeats are not events')
})

t.test('JOIN_LEAVE on: a stream gets join and leave events of its topics', async t => {
  const server = await startServer(t, { jwtSecret: SECRET, presence: true, joinLeave: true })
  const topic = 'public.room'
  const stream = await openStream(t, server.url, { topics: [topic], token: mint({ sub: 'alice' }) })
  const own = await stream.next(event => event.event === 'join')
  t.same(own.json, { type: 'join', topic, user: 'alice', connectionId: stream.welcome.connectionId }, 'its own join')
  const bob = await connect(t, `${server.wsUrl}?token=${mint({ sub: 'bob' })}`)
  await bob.request({ type: 'subscribe', topic })
  const join = await stream.next(event => event.event === 'join' && event.json.user === 'bob')
  t.same(join.json, { type: 'join', topic, user: 'bob', connectionId: bob.welcome.connectionId })
  bob.close()
  const leave = await stream.next(event => event.event === 'leave')
  t.same(leave.json, { type: 'leave', topic, user: 'bob', connectionId: bob.welcome.connectionId })
  t.same(stream.events.filter(event => event.event === 'join' || event.event === 'leave').map(event => `${event.event}:${event.json.user}`), ['join:alice', 'join:bob', 'leave:bob'])
})

t.test('resume on the in-memory broker', async t => {
  t.test('?lastEventId= and then Last-Event-ID: exactly the missed publications, in order, recovered, then live ones', async t => {
    const server = await startServer(t, { historySize: 10 })
    const topics = ['res.a', 'res.b', 'res.quiet']
    const first = await openStream(t, server.url, { topics })
    await first.until(() => first.named('subscribed').length === 3, 'subscribed')
    await publish(server.url, 'res.a', 'a1')
    await publish(server.url, 'res.b', 'b1')
    await publish(server.url, 'res.a', 'a2')
    await first.until(() => first.named('message').length === 3, 'three messages')
    const lastId = first.named('message')[2].id as string
    first.close()
    await first.ended
    await eventually('the first stream is gone', () => server.app[kRealtimeNode].hub.counts.connections === 0)

    const missed = [['res.a', 'a3'], ['res.b', 'b2'], ['res.a', 'a4'], ['res.b', 'b3']]
    for (const [topic, data] of missed) await publish(server.url, topic, data)

    const second = await openStream(t, server.url, { topics, lastEventId: lastId })
    await second.until(() => second.named('subscribed').length === 3 && second.named('message').length === 4, 'subscribed and the replays')
    for (const event of second.named('subscribed')) {
      t.equal(event.json.recovered, true, `${event.json.topic as string} recovered`)
      const index = second.events.indexOf(event)
      const replayed = second.events.findIndex(e => e.event === 'message' && e.json.topic === event.json.topic)
      if (replayed !== -1) t.ok(index < replayed, `${event.json.topic as string}: its subscribed event comes before its replays`)
    }
    t.match(second.named('subscribed').find(event => event.json.topic === 'res.a')?.json, { offset: 4, recovered: true })
    t.match(second.named('subscribed').find(event => event.json.topic === 'res.b')?.json, { offset: 3, recovered: true })
    t.match(second.named('subscribed').find(event => event.json.topic === 'res.quiet')?.json, { offset: 0, recovered: true })
    await publish(server.url, 'res.b', 'b4')
    await second.until(() => second.named('message').length === 5, 'the live one')
    t.same(messageData(second, 'res.a'), ['a3', 'a4'], 'res.a: exactly the missed ones, in order')
    t.same(messageData(second, 'res.b'), ['b2', 'b3', 'b4'], 'res.b: the missed ones, then the live one')
    t.same(messageData(second, 'res.quiet'), [])
    t.equal(second.named('message')[4].json.data, 'b4', 'the live one after every replay')
    const resumedAt = second.named('message')[4]
    t.same(cursorOf(t, resumedAt, 3).map(p => p?.offset), [4, 4, 0], 'its id holds every topic\'s position')
    second.close()
    await second.ended

    // The same with the header EventSource sends.
    await publish(server.url, 'res.quiet', 'q1')
    await publish(server.url, 'res.a', 'a5')
    const third = await openStream(t, server.url, { topics, headers: { 'last-event-id': resumedAt.id as string } })
    await third.until(() => third.named('message').length === 2, 'the replays')
    t.same(third.named('subscribed').map(event => event.json.recovered), [true, true, true])
    t.same(third.messages().map(frame => frame.data).sort(), ['a5', 'q1'], 'exactly the two missed ones')
    await publish(server.url, 'res.a', 'a6')
    await third.until(() => third.named('message').length === 3, 'the live one')
    t.same(messageData(third, 'res.a'), ['a5', 'a6'])
    t.same(messageData(third, 'res.b'), [], 'nothing of res.b: it had nothing new')
    t.equal(third.named('message')[2].json.data, 'a6')
    t.same(cursorOf(t, third.named('message')[2], 3).map(p => p?.offset), [6, 4, 1])
  })

  t.test('a cursor of another epoch or beyond history: recovered false, nothing replayed, only live ones', async t => {
    const server = await startServer(t, { historySize: 5 })
    const topics = ['gap.epoch', 'gap.far']
    const epochPos = await publish(server.url, 'gap.epoch', 1)
    const farStart = await publish(server.url, 'gap.far', 1)
    for (let i = 2; i <= 12; i++) await publish(server.url, 'gap.far', i)
    await publish(server.url, 'gap.epoch', 2)
    const cursor = encodeCursor([{ epoch: `${epochPos.epoch}x`, offset: 1 }, farStart])
    const stream = await openStream(t, server.url, { topics, lastEventId: cursor })
    await stream.until(() => stream.named('subscribed').length === 2, 'subscribed')
    const byTopic = new Map(stream.named('subscribed').map(event => [event.json.topic, event.json]))
    t.same(byTopic.get('gap.epoch'), { topic: 'gap.epoch', epoch: epochPos.epoch, offset: 2, recovered: false }, 'another epoch: not recovered, the real position')
    t.same(byTopic.get('gap.far'), { topic: 'gap.far', epoch: farStart.epoch, offset: 12, recovered: false }, 'beyond history: not recovered')
    t.same(cursorOf(t, stream.named('subscribed')[1], 2), [{ epoch: epochPos.epoch, offset: 2 }, { epoch: farStart.epoch, offset: 12 }], 'the ids move to the real positions')
    await publish(server.url, 'gap.far', 13)
    await publish(server.url, 'gap.epoch', 3)
    await stream.until(() => stream.named('message').length === 2, 'the live ones')
    t.same(stream.messages().map(frame => [frame.topic, frame.data]), [['gap.far', 13], ['gap.epoch', 3]], 'only the live publications')

    // Another with the header: an offset ahead of the topic's top is not recovered either.
    const ahead = await openStream(t, server.url, { topics: ['gap.far'], headers: { 'last-event-id': encodeCursor([{ epoch: farStart.epoch, offset: 99 }]) } })
    const sub = await ahead.next(event => event.event === 'subscribed')
    t.same(sub.json, { topic: 'gap.far', epoch: farStart.epoch, offset: 13, recovered: false })
    await publish(server.url, 'gap.far', 14)
    await ahead.next(event => event.event === 'message')
    t.same(messageData(ahead), [14])
  })

  t.test('a subscribed id of a topic never published to resumes too', async t => {
    // EventSource reconnects with the last id it saw, which may be a subscribed event's.
    const server = await startServer(t, { historySize: 10 })
    const topics = ['fresh.a', 'fresh.b']
    const first = await openStream(t, server.url, { topics })
    await first.until(() => first.named('subscribed').length === 2, 'subscribed')
    const lastId = first.named('subscribed')[1].id as string
    first.close()
    await publish(server.url, 'fresh.a', 'a1')
    const second = await openStream(t, server.url, { topics, headers: { 'last-event-id': lastId } })
    await second.next(event => event.event === 'message')
    t.same(second.messages().map(frame => frame.data), ['a1'])
  })
})

t.test('every refusal is a plain HTTP error before any stream', async t => {
  const server = await serve(t, { jwtSecret: SECRET, apiKey: API_KEY, maxSubscriptions: 3 }, app => {
    app.realtime.addHook('onSubscribe', ctx => {
      if (ctx.topic === 'public.secret') throw refusal(403, 'not for you')
    })
    app.realtime.addHook('onConnect', ctx => {
      if (ctx.identity.user === 'banned') throw refusal(403, 'banned by the application')
      if (ctx.identity.user === 'busy') throw refusal(429, 'too many sessions')
    })
  })
  const token = mint({ sub: 'alice' })
  const node = server.app[kRealtimeNode]
  const cases: Array<[string, Parameters<typeof refusedStream>[1], number, string, RegExp]> = [
    ['no topic', { topics: [], token }, 400, 'bad_request', /topic is required/],
    ['an invalid topic', { topics: ['public.ok', 'no spaces allowed'], token }, 400, 'bad_request', /topic/],
    ['an empty topic', { topics: [''], token }, 400, 'bad_request', /topic/],
    ['a duplicate topic', { topics: ['public.a', 'public.a'], token }, 400, 'bad_request', /at most once/],
    ['too many topics', { topics: ['public.a', 'public.b', 'public.c', 'public.d'], token }, 400, 'bad_request', /at most 3 topics/],
    ['a lastEventId that is no cursor', { topics: ['public.a'], token, lastEventId: 'garbage' }, 400, 'bad_request', /lastEventId/],
    ['a cursor of another number of topics', { topics: ['public.a'], token, lastEventId: encodeCursor([{ epoch: 'e', offset: 1 }, { epoch: 'e', offset: 2 }]) }, 400, 'bad_request', /lastEventId/],
    ['a cursor with a bad offset', { topics: ['public.a'], token, lastEventId: 'abc.-1' }, 400, 'bad_request', /lastEventId/],
    ['a bad Last-Event-ID header', { topics: ['public.a'], token, headers: { 'last-event-id': 'x.y.z' } }, 400, 'bad_request', /lastEventId/],
    ['two lastEventId parameters', { topics: ['public.a'], token, path: '/sse?lastEventId=e.1&lastEventId=e.2' }, 400, 'bad_request', /lastEventId: give it once/],
    ['no credentials', { topics: ['public.a'] }, 401, 'unauthorized', /./],
    ['a token signed with another key', { topics: ['public.a'], token: mint({ sub: 'alice' }, { key: 'another-secret-another-secret-another' }) }, 401, 'unauthorized', /./],
    ['an expired token', { topics: ['public.a'], token: mint({ sub: 'alice', exp: nowSeconds() - 10 }) }, 401, 'unauthorized', /./],
    ['a bad bearer token', { topics: ['public.a'], headers: bearer('not-a-jwt') }, 401, 'unauthorized', /./],
    ['a wrong API key', { topics: ['public.a'], headers: { 'x-api-key': 'wrong' } }, 401, 'unauthorized', /./],
    ['the ACL denies one topic', { topics: ['public.a', 'user.bob.inbox'], token }, 403, 'forbidden', /user\.bob\.inbox/],
    ['an onSubscribe hook refuses one topic', { topics: ['public.a', 'public.secret'], token }, 403, 'forbidden', /not for you/],
    ['an onConnect hook refuses (403)', { topics: ['public.a'], token: mint({ sub: 'banned' }) }, 403, 'forbidden', /banned by the application/],
    ['an onConnect hook refuses (429)', { topics: ['public.a'], token: mint({ sub: 'busy' }) }, 429, 'rate_limited', /too many sessions/]
  ]
  for (const [what, options, status, code, message] of cases) {
    const refused = await refusedStream(server.url, options)
    t.equal(refused.status, status, `${what}: ${status}`)
    t.match(refused.body, { code, message }, `${what}: code ${code}`)
    t.match(refused.headers['content-type'], /application\/json/, `${what}: a JSON body, not a stream`)
  }
  t.equal(node.hub.connections.size, 0, 'no stream opened')
  t.equal(node.admissions.reserved, 0, 'no slot held by the refused streams')
  t.equal(sample(await scrape(server.url, admin), 'realtime_connections{transport="sse"}'), 0, 'no stream counted')

  // Each way of authenticating opens a stream.
  const byBearer = await openStream(t, server.url, { topics: ['public.a', 'user.alice.inbox'], headers: bearer(token) })
  t.equal(byBearer.welcome.user, 'alice', 'Authorization: Bearer')
  const byQuery = await openStream(t, server.url, { topics: ['public.a'], token })
  t.equal(byQuery.welcome.user, 'alice', '?token=')
  const byKey = await openStream(t, server.url, { topics: ['private.anything'], headers: admin })
  t.equal(byKey.status, 200, 'X-API-Key')
  await byKey.next(event => event.event === 'subscribed')
})

t.test('more refusals: a foreign Origin (403), the broker down (503), revoked or disconnected while admitted', async t => {
  t.test('ALLOWED_ORIGINS: 403 for another site\'s page, 200 for ours and for clients without Origin', async t => {
    const server = await startServer(t, { allowedOrigins: ['https://good.example'] })
    const refused = await refusedStream(server.url, { topics: ['o.a'], headers: { origin: 'https://evil.example' } })
    t.equal(refused.status, 403)
    t.match(refused.body, { code: 'forbidden', message: /origin/ })
    t.equal((await openStream(t, server.url, { topics: ['o.a'], headers: { origin: 'https://good.example' } })).status, 200)
    t.equal((await openStream(t, server.url, { topics: ['o.a'] })).status, 200)
    t.equal(server.app[kRealtimeNode].admissions.reserved, 2, 'only the two open streams hold slots')
  })

  t.test('the broker down: 503, no slot held; a stream opens once it is back', async t => {
    const redis = await privateRedis(t)
    const server = await startServer(t, { redisUrl: redis.url, redisPrefix: 'rt-sse-outage:' })
    const node = server.app[kRealtimeNode]
    const open = await openStream(t, server.url, { topics: ['down.kept'] })
    await open.next(event => event.event === 'subscribed')
    await redis.stop()
    await eventually('the broker is down', () => !node.broker.up)
    const refused = await refusedStream(server.url, { topics: ['down.new'] })
    t.equal(refused.status, 503)
    t.match(refused.body, { code: 'unavailable' })
    t.equal(node.hub.transportCounts.sse, 1, 'the refused stream is not counted')
    t.equal(node.admissions.reserved, 1, 'and holds no slot')
    t.notOk(open.named('close').length > 0, 'the open stream is kept')
    await redis.start()
    await eventually('the broker is back', () => node.broker.up, 15000)
    const again = await openStream(t, server.url, { topics: ['down.new'] })
    t.equal((await again.next(event => event.event === 'subscribed')).json.topic, 'down.new')
  })

  for (const kind of ['revoke', 'disconnect'] as const) {
    t.test(`a ${kind} while the stream is being admitted: refused, nothing left behind`, async t => {
      let release!: () => void
      const held = new Promise<void>(resolve => { release = resolve })
      let entered!: () => void
      const inHook = new Promise<void>(resolve => { entered = resolve })
      const server = await serve(t, { jwtSecret: SECRET, apiKey: API_KEY }, app => {
        app.realtime.addHook('onSubscribe', async ctx => {
          if (ctx.topic !== 'public.slow') return
          entered()
          await held
        })
      })
      const node = server.app[kRealtimeNode]
      const token = mint({ sub: 'henry', jti: `admitting-${kind}` })
      const refusing = refusedStream(server.url, { topics: ['public.slow'], token }).catch((err: Error) => ({ status: -1, body: err.message, headers: {} }))
      await inHook
      const answer = kind === 'revoke'
        ? await postJson(`${server.url}/api/revoke`, { jti: `admitting-${kind}` }, admin)
        : await postJson(`${server.url}/api/disconnect`, { user: 'henry' }, admin)
      t.equal(answer.status, 200)
      release()
      const refused = await refusing
      // The stream's own 4003 close, as the HTTP error it still can be (a later request with a revoked token gets 401).
      t.equal(refused.status, 403, 'refused with an HTTP error, not a stream')
      t.match(refused.body, { code: 'forbidden' })
      t.match(refused.body, { message: kind === 'revoke' ? /revoked/ : /disconnected/ })
      await eventually('nothing held', () => node.admissions.reserved === 0 && node.hub.connections.size === 0)
      t.same(node.hub.counts, { connections: 0, subscriptions: 0, topics: 0 })
    })
  }
})

t.test('a host verify function (embedded under a prefix) authenticates streams as it does upgrades', async t => {
  const app = Fastify()
  const verify = (request: FastifyRequest): Identity => {
    const user = request.headers['x-session-user']
    if (typeof user !== 'string') throw new Error('no session: log in first')
    if (user === 'banned') throw Object.assign(new Error('banned'), { statusCode: 403 })
    return { user, admin: false, subscribe: ['rooms.>'], publish: ['rooms.>'], expiresAt: null, jti: `session-${user}` }
  }
  await app.register(realtime, { production: true, apiKey: API_KEY, verify, prefix: '/rt' })
  const url = await listen(t, app)
  const path = '/rt/sse'
  const refused = await refusedStream(url, { path, topics: ['rooms.1'] })
  t.equal(refused.status, 401)
  t.match(refused.body, { code: 'unauthorized', message: 'no session: log in first' })
  t.equal((await refusedStream(url, { path, topics: ['rooms.1'], headers: { 'x-session-user': 'banned' } })).status, 403, 'the status verify throws')
  const forbidden = await refusedStream(url, { path, topics: ['rooms.1', 'public.news'], headers: { 'x-session-user': 'carol' } })
  t.equal(forbidden.status, 403, "the identity's ACL applies")
  const stream = await openStream(t, url, { path, topics: ['rooms.1'], headers: { 'x-session-user': 'carol' } })
  t.equal(stream.welcome.user, 'carol')
  t.equal((await postJson(`${url}/rt/api/publish`, { topic: 'rooms.1', data: 'hi' }, { 'x-session-user': 'dave' })).status, 200)
  t.same((await stream.next(event => event.event === 'message')).json.data, 'hi')
  t.equal((await postJson(`${url}/rt/api/revoke`, { jti: 'session-carol' }, admin)).status, 200)
  await stream.ended
  t.match(stream.events[stream.events.length - 1], { event: 'close', json: { code: 4003 } }, 'revocation ends a host identity\'s stream')
})

t.test('caps count streams and websockets together', async t => {
  t.test('MAX_CONNECTIONS=2: a websocket and a stream fill it; a third of either kind gets 503', async t => {
    const server = await startServer(t, { maxConnections: 2 })
    const node = server.app[kRealtimeNode]
    const ws = await connect(t, server.wsUrl)
    const stream = await openStream(t, server.url, { topics: ['cap.a'] })
    const refused = await refusedStream(server.url, { topics: ['cap.a'] })
    t.equal(refused.status, 503)
    t.match(refused.body, { code: 'unavailable', message: /MAX_CONNECTIONS/ })
    const upgrade = await refusedUpgrade(server.wsUrl)
    t.equal(upgrade.status, 503, 'a third websocket too')
    t.match(JSON.parse(upgrade.body), { code: 'unavailable' })
    t.same(node.hub.transportCounts, { websocket: 1, sse: 1 })

    // Closing the stream frees its slot, for either kind.
    stream.close()
    await eventually('the stream\'s slot given back', () => node.admissions.reserved === 1)
    const again = await connect(t, server.wsUrl)
    t.ok(again.welcome.connectionId, 'a websocket takes the freed slot')
    t.equal((await refusedStream(server.url, { topics: ['cap.a'] })).status, 503, 'and the node is full again')
    ws.close()
    await ws.closed
    await eventually('the websocket\'s slot given back', () => node.admissions.reserved === 1)
    const stream2 = await openStream(t, server.url, { topics: ['cap.a'] })
    t.equal(stream2.status, 200, 'a stream takes the slot a websocket freed')
  })

  t.test('MAX_CONNECTIONS_PER_USER=2: a websocket and a stream of one user fill it; 429 for the third', async t => {
    const server = await startServer(t, { jwtSecret: SECRET, maxConnectionsPerUser: 2 })
    const node = server.app[kRealtimeNode]
    const token = mint({ sub: 'alice' })
    await connect(t, `${server.wsUrl}?token=${token}`)
    const stream = await openStream(t, server.url, { topics: ['public.a'], token })
    const refused = await refusedStream(server.url, { topics: ['public.a'], token })
    t.equal(refused.status, 429)
    t.match(refused.body, { code: 'rate_limited', message: /at most 2 connections per user/ })
    const upgrade = await refusedUpgrade(`${server.wsUrl}?token=${token}`)
    t.equal(upgrade.status, 429, 'a third websocket of alice too')
    const bob = await openStream(t, server.url, { topics: ['public.a'], token: mint({ sub: 'bob' }) })
    t.equal(bob.welcome.user, 'bob', 'another user is not held back')
    t.equal(node.admissions.reservedBy('alice'), 2)
    stream.close()
    await eventually('alice\'s stream slot given back', () => node.admissions.reservedBy('alice') === 1)
    const again = await openStream(t, server.url, { topics: ['public.a'], token })
    t.equal(again.welcome.user, 'alice', 'the freed slot admits her again')
  })

  t.test('draining: 503 to a new stream', async t => {
    const server = await startServer(t, { shutdownTimeout: 3000 })
    // A websocket that does not read keeps the drain open.
    const stuck = await connect(t, server.wsUrl)
    stuck.ws.on('error', () => {})
    ;(stuck.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
    const closing = server.app.close()
    await eventually('draining', () => server.app[kRealtimeNode].draining)
    const refused = await refusedStream(server.url, { topics: ['drain.a'] })
    t.equal(refused.status, 503)
    t.match(refused.body, { code: 'unavailable', message: /shutting down/ })
    stuck.ws.terminate()
    await closing
  })
})

t.test('a stream is ended like a websocket, with a last close event', async t => {
  const start = async (t: Test, overrides: Partial<Config> = {}): Promise<{ app: FastifyInstance, url: string }> =>
    await serve(t, { jwtSecret: SECRET, apiKey: API_KEY, ...overrides })

  /** Waits for the stream's end; its last event must be `close`, whose data is returned. */
  async function closeEvent (t: Test, stream: SseStream): Promise<any> {
    const ended = await stream.ended
    t.equal(ended.aborted, false, 'the response ends cleanly')
    const last = stream.events[stream.events.length - 1]
    t.equal(last.event, 'close', 'the last event is close')
    return last.json
  }

  async function gaugeDrops (t: Test, server: { app: FastifyInstance, url: string }, code: number): Promise<void> {
    const node = server.app[kRealtimeNode]
    await eventually('the stream leaves the hub', () => node.hub.connections.size === 0)
    const text = await scrape(server.url, admin)
    t.equal(sample(text, 'realtime_connections{transport="sse"}'), 0, 'realtime_connections{transport="sse"} drops to 0')
    t.equal(sample(text, `realtime_disconnects_total{transport="sse",code="${code}"}`), 1, `counted as an sse ${code}`)
    t.equal(node.admissions.reserved, 0, 'its slot given back')
  }

  t.test('POST /api/revoke of its jti: close 4003 at once; the token is refused after', async t => {
    const server = await start(t)
    const token = mint({ sub: 'alice', jti: 'sse-revoked' })
    const stream = await openStream(t, server.url, { topics: ['public.a'], token })
    const other = await openStream(t, server.url, { topics: ['public.a'], token: mint({ sub: 'alice', jti: 'sse-kept' }) })
    t.equal(sample(await scrape(server.url, admin), 'realtime_connections{transport="sse"}'), 2)
    t.equal((await postJson(`${server.url}/api/revoke`, { jti: 'sse-revoked' }, admin)).status, 200)
    t.match(await closeEvent(t, stream), { code: 4003, reason: 'token revoked' })
    other.close()
    await eventually('both gone', () => server.app[kRealtimeNode].hub.connections.size === 0)
    const text = await scrape(server.url, admin)
    t.equal(sample(text, 'realtime_disconnects_total{transport="sse",code="4003"}'), 1)
    t.equal(sample(text, 'realtime_disconnects_total{transport="sse",code="1006"}'), 1, 'the one the client ended')
    t.equal(sample(text, 'realtime_connections{transport="sse"}'), 0)
    const again = await refusedStream(server.url, { topics: ['public.a'], token })
    t.equal(again.status, 401, 'the revoked token opens no new stream')
    t.match(again.body, { code: 'unauthorized', message: /revoked/ })
  })

  t.test('POST /api/disconnect of its user: close 4003 at once', async t => {
    const server = await start(t)
    const stream = await openStream(t, server.url, { topics: ['public.a', 'user.dave.inbox'], token: mint({ sub: 'dave' }) })
    await stream.until(() => stream.named('subscribed').length === 2, 'subscribed')
    t.equal((await postJson(`${server.url}/api/disconnect`, { user: 'dave' }, admin)).status, 200)
    t.match(await closeEvent(t, stream), { code: 4003, reason: 'disconnected by the server' })
    await gaugeDrops(t, server, 4003)
    t.same(server.app[kRealtimeNode].hub.counts, { connections: 0, subscriptions: 0, topics: 0 }, 'its subscriptions are gone')
  })

  t.test('token expiry: close 4001', async t => {
    const server = await start(t)
    const exp = nowSeconds() + 2
    const stream = await openStream(t, server.url, { topics: ['public.a'], token: mint({ sub: 'erin', exp }) })
    t.equal(stream.welcome.expiresAt, exp * 1000, 'the welcome names the expiry')
    t.match(await closeEvent(t, stream), { code: 4001, reason: /expired/ })
    t.ok(Date.now() >= exp * 1000 - 1000, 'not before the token expired')
    await gaugeDrops(t, server, 4001)
  })

  t.test('drain (app.close()): close 1001', async t => {
    const server = await start(t)
    const streams = await Promise.all(['frank', 'gina'].map(async sub => await openStream(t, server.url, { topics: ['public.a'], token: mint({ sub }) })))
    const closing = server.app.close()
    for (const stream of streams) t.match(await closeEvent(t, stream), { code: 1001, reason: /shutting down/ })
    await closing
    const node = server.app[kRealtimeNode]
    t.equal(node.hub.connections.size, 0, 'every stream is gone')
    t.equal(node.stats.disconnects.sse.get(1001), 2, 'counted as two sse 1001 closes')
    t.equal(node.hub.transportCounts.sse, 0)
  })
})

t.test('a stream that is not read is cut at SEND_BUFFER_LIMIT (4009); the other stream gets everything', async t => {
  const SEND_BUFFER_LIMIT = 65536
  // Each event is under the limit: only a reader that stops reading backs the buffer up past it.
  const PAYLOAD = 'x'.repeat(32 * 1024)
  /** Bounds the test: far more than the loopback buffers hold (a few MB), far less than exhausts memory. */
  const MAX_PUBLICATIONS = 3000
  const server = await startServer(t, { sendBufferLimit: SEND_BUFFER_LIMIT })
  const node = server.app[kRealtimeNode]
  const slow = await openStream(t, server.url, { topics: ['firehose'] })
  const fast = await openStream(t, server.url, { topics: ['firehose'] })
  await slow.next(event => event.event === 'subscribed')
  await fast.next(event => event.event === 'subscribed')
  const slowOnServer = serverConnection(server.app, slow)
  const fastOnServer = serverConnection(server.app, fast)

  // Stop reading from the kernel: the server's writes back up.
  slow.response.pause()
  slow.socket.pause()
  let published = 0
  let highestBuffered = 0
  const slowResponse = (slowOnServer as unknown as { response: { writableLength: number } }).response
  while (slowOnServer.open && published < MAX_PUBLICATIONS) {
    await node.publish('firehose', { n: ++published, payload: PAYLOAD })
    highestBuffered = Math.max(highestBuffered, slowResponse.writableLength)
    // Let the sockets write (the fast stream reads meanwhile).
    await new Promise(resolve => setImmediate(resolve))
  }
  t.equal(slowOnServer.closeCode, 4009, `cut with 4009 after ${published} publications of 32 KiB`)
  t.equal(slowOnServer.open, false)
  t.ok(published > 10, 'not before the kernel buffers had filled')
  t.ok(highestBuffered > SEND_BUFFER_LIMIT, 'because its buffer went over SEND_BUFFER_LIMIT')
  const cutAt = published
  for (let i = 0; i < 5; i++) {
    await node.publish('firehose', { n: ++published, payload: PAYLOAD })
    await new Promise(resolve => setImmediate(resolve))
  }

  await eventually('the slow stream is gone from the hub', () => node.hub.transportCounts.sse === 1)
  const text = await scrape(server.url)
  t.equal(sample(text, 'realtime_disconnects_total{transport="sse",code="4009"}'), 1, 'counted as an sse 4009')
  t.equal(sample(text, 'realtime_connections{transport="sse"}'), 1, 'the reading stream is still counted')

  slow.socket.resume()
  slow.response.resume()
  const ended = await slow.ended
  t.equal(ended.aborted, true, 'the response was destroyed, not ended')
  t.equal(slow.named('close').length, 0, 'no close event: a reader that does not read is not written to')
  const received = slow.messages().map(frame => frame.data.n)
  t.ok(received.every(n => n <= cutAt), 'nothing published after the cut')
  t.same(received, received.map((_, i) => i + 1), 'in order, without gaps, up to where it was cut')

  await fast.until(() => fast.named('message').length === published, 'every publication on the reading stream', 30000)
  t.same(fast.messages().map(frame => frame.data.n), Array.from({ length: published }, (_, i) => i + 1), 'the reading stream got everything, in order')
  t.equal(fastOnServer.open, true, 'and is still open')
  t.equal(fastOnServer.closeCode, undefined)
})

t.test('a stream that reads is not cut for what one tick writes to it, as a websocket is not', async t => {
  t.test('an event bigger than SEND_BUFFER_LIMIT', async t => {
    const server = await startServer(t, { sendBufferLimit: 16384 })
    const node = server.app[kRealtimeNode]
    const ws = await connect(t, server.wsUrl)
    await ws.request({ type: 'subscribe', topic: 'big' })
    const stream = await openStream(t, server.url, { topics: ['big'] })
    await stream.next(event => event.event === 'subscribed')
    const onServer = serverConnection(server.app, stream)
    // Paced by both readers: the next once the previous has arrived everywhere.
    for (let n = 1; n <= 5; n++) {
      await node.publish('big', { n, payload: 'x'.repeat(20000) })
      await ws.next(frame => frame.type === 'message' && frame.data.n === n)
      if (onServer.open) await stream.until(() => stream.messages().some(frame => frame.data.n === n) || !onServer.open, `message ${n} or the cut`)
    }
    t.equal(ws.messages('big').length, 5, 'the websocket got all five')
    t.equal(onServer.closeCode, undefined, 'the stream was not cut')
    t.same(stream.messages().map(frame => frame.data.n), [1, 2, 3, 4, 5], 'the stream got all five')
  })

  t.test('a burst of publications in one tick, more than SEND_BUFFER_LIMIT together', async t => {
    const server = await startServer(t, { sendBufferLimit: 65536 })
    const node = server.app[kRealtimeNode]
    const ws = await connect(t, server.wsUrl)
    await ws.request({ type: 'subscribe', topic: 'burst' })
    const stream = await openStream(t, server.url, { topics: ['burst'] })
    await stream.next(event => event.event === 'subscribed')
    const onServer = serverConnection(server.app, stream)
    // Five publications of 20 KB at once: each under the limit, 100 KB together.
    await Promise.all([1, 2, 3, 4, 5].map(async n => await node.publish('burst', { n, payload: 'x'.repeat(20000) })))
    await ws.next(frame => frame.type === 'message' && frame.data.n === 5)
    t.same(ws.messages('burst').map(frame => frame.data.n), [1, 2, 3, 4, 5], 'the websocket got all five')
    if (onServer.open) await stream.until(() => stream.named('message').length === 5 || !onServer.open, 'five messages or the cut')
    t.equal(onServer.closeCode, undefined, 'the stream was not cut')
    t.same(stream.messages().map(frame => frame.data.n), [1, 2, 3, 4, 5], 'the stream got all five')
  })
})

t.test('a resume whose replay is bigger than SEND_BUFFER_LIMIT reaches a reading stream, as it does a websocket', async t => {
  // Defaults: SEND_BUFFER_LIMIT 1 MiB, HISTORY_SIZE 100, MAX_PAYLOAD 64 KiB; 30 missed publications of 60 KB.
  const server = await startServer(t)
  const node = server.app[kRealtimeNode]
  const first = await openStream(t, server.url, { topics: ['replay.big'] })
  const start = await node.publish('replay.big', { n: 0 })
  const last = await first.next(event => event.event === 'message')
  first.close()
  await eventually('the first stream is gone', () => node.hub.connections.size === 0)
  for (let n = 1; n <= 30; n++) await node.publish('replay.big', { n, payload: 'x'.repeat(60000) })

  const ws = await connect(t, server.wsUrl)
  t.match(await ws.request({ type: 'subscribe', topic: 'replay.big', since: start }), { recovered: true })
  await ws.next(frame => frame.type === 'message' && frame.data.n === 30)
  t.equal(ws.messages('replay.big').length, 30, 'the websocket got the whole replay')

  let opened: Awaited<ReturnType<typeof requestStream>> | undefined
  try {
    opened = await requestStream(streamUrl(server.url, { topics: ['replay.big'], lastEventId: last.id }))
  } catch (err) {
    t.fail(`the resumed stream was cut before its 200: ${String(err)}; sse disconnects ${JSON.stringify([...node.stats.disconnects.sse])}`)
  }
  t.teardown(() => { opened?.request.destroy() })
  const stream = opened === undefined ? undefined : new SseStream(opened.request, opened.response)
  t.equal(opened?.response.statusCode, 200)
  await stream?.until(() => stream.named('message').length === 30, 'the whole replay', 10000)
    .catch((err: Error) => t.fail(`the stream did not get the replay: ${err.message.slice(0, 200)}; sse disconnects ${JSON.stringify([...node.stats.disconnects.sse])}`))
  t.same(stream?.messages().map(frame => frame.data.n), Array.from({ length: 30 }, (_, i) => i + 1), 'the stream got the whole replay, in order')
  t.same([...node.stats.disconnects.sse], [[1006, 1]], 'no stream was cut (only the first, which the client ended)')
})

t.test('metrics and log lines: realtime_connections{transport="sse"}, event stream opened/closed', async t => {
  const lines: Array<Record<string, any>> = []
  const logStream = { write: (line: string) => { for (const l of line.split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l)) } }
  const server = await serve(t, { jwtSecret: SECRET, apiKey: API_KEY }, () => {}, logStream)
  const aliceToken = mint({ sub: 'alice', jti: 'logged-stream' })
  const alice = await openStream(t, server.url, { topics: ['public.a', 'public.b'], token: aliceToken })
  const bob = await openStream(t, server.url, { topics: ['public.a'], token: mint({ sub: 'bob' }) })
  await connect(t, `${server.wsUrl}?token=${mint({ sub: 'carol' })}`)
  await alice.until(() => alice.named('subscribed').length === 2, 'subscribed')
  await bob.next(event => event.event === 'subscribed')
  let text = await scrape(server.url, admin)
  t.equal(sample(text, 'realtime_connections{transport="sse"}'), 2, 'two streams')
  t.equal(sample(text, 'realtime_connections{transport="websocket"}'), 1, 'one websocket')
  t.equal(sample(text, 'realtime_subscriptions'), 3, 'the streams\' topics are subscriptions')

  const opened = lines.filter(line => line.msg === 'event stream opened')
  t.equal(opened.length, 2, 'one line per stream opened')
  const aliceOpened = opened.find(line => line.connectionId === alice.welcome.connectionId)
  t.match(aliceOpened, { level: 30, transport: 'sse', user: 'alice', topics: 2, remoteAddress: '127.0.0.1', reqId: String })

  alice.close()
  await eventually('alice\'s stream is closed', () => lines.some(line => line.msg === 'event stream closed'))
  const closed = lines.filter(line => line.msg === 'event stream closed')
  t.equal(closed.length, 1)
  t.match(closed[0], { transport: 'sse', connectionId: alice.welcome.connectionId, user: 'alice', code: 1006, durationMs: Number })
  t.equal(lines.filter(line => line.msg === 'websocket closed').length, 0, 'not logged as a websocket')
  text = await scrape(server.url, admin)
  t.equal(sample(text, 'realtime_connections{transport="sse"}'), 1)
  t.equal(sample(text, 'realtime_disconnects_total{transport="sse",code="1006"}'), 1, 'a stream the client ended is a 1006')
  t.ok(Number.isNaN(sample(text, 'realtime_disconnects_total{transport="websocket",code="1006"}')), 'no websocket disconnect counted')
  t.notOk(lines.some(line => JSON.stringify(line).includes(aliceToken.split('.')[2])), 'no token in any line')
})

t.test('an HTTP/1.0 client (no chunked encoding) gets the same events, through ServerResponse.write', async t => {
  const { url } = await serve(t, { apiKey: API_KEY, defaultSubscribe: ['>'] })
  const { hostname, port } = new URL(url)
  const socket = net.connect(Number(port), hostname)
  t.teardown(() => socket.destroy())
  let received = ''
  socket.on('data', chunk => { received += chunk.toString() })
  const ended = new Promise(resolve => socket.once('close', resolve))
  socket.write('GET /sse?topic=old.a&topic=old.b HTTP/1.0\r\n\r\n')
  await eventually('subscribed to both', () => (received.match(/event: subscribed/g) ?? []).length === 2)
  await publish(url, 'old.a', { n: 1 }, admin)
  await publish(url, 'old.b', { n: 2 }, admin)
  await eventually('both messages', () => (received.match(/event: message/g) ?? []).length === 2)
  const [head, body] = received.split('\r\n\r\n')
  t.match(head, /^HTTP\/1\.1 200 OK/)
  t.notMatch(head, /transfer-encoding: chunked/i, 'no chunked encoding for HTTP/1.0')
  t.notMatch(body, /^[0-9a-f]+\r\n/m, 'no chunk sizes in the body')
  const ids = [...body.matchAll(/^id: (.*)$/gm)].map(match => decodeCursor(match[1], 2))
  t.match(ids.at(-1), [{ offset: 1 }, { offset: 1 }], 'the last id holds both topics\' positions')
  t.match(body, /event: message\ndata: \{"type":"message","topic":"old.b".*"data":\{"n":2\}\}\n\n/)
  socket.end()
  await ended
})
