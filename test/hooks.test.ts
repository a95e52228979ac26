// Application hooks (docs/hooks.md): app.realtime.addHook('onConnect' | 'onSubscribe' |
// 'onPublish' | 'onDisconnect', fn), each allowing and refusing on real servers and sockets, over the
// websocket and over HTTP; a payload rewritten for every subscriber on two nodes; a refused
// publication delivered nowhere.
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { buildApp } from '../src/app.js'
import { configWith, type Config } from '../src/config.js'
import type { ConnectContext, DisconnectContext, PublishContext, SubscribeContext } from '../src/core/hooks.js'
import { bearer, mint, SECRET } from './auth-tokens.js'
import { REDIS_URL, redisPrefix } from './fixtures/cluster.js'
import { connect, eventually, getJson, listen, postJson, refusedUpgrade, type Client } from './helpers.js'

/** A status-carrying error, as a host's code throws one (Fastify's httpErrors, @fastify/sensible). */
function refusal (statusCode: number, message: string): Error {
  return Object.assign(new Error(message), { statusCode })
}

/** An app with `setup` run before it listens: hooks are added before the app is ready. */
async function serve (t: Test, setup: (app: FastifyInstance) => void, overrides: Partial<Config> = {}): Promise<{ app: FastifyInstance, url: string, wsUrl: string }> {
  const app = await buildApp(configWith({ logLevel: 'silent', port: 0, jwtSecret: SECRET, ...overrides }))
  setup(app)
  const url = await listen(t, app)
  return { app, url, wsUrl: `${url.replace('http', 'ws')}/ws` }
}

const as = (sub: string, claims: Record<string, unknown> = {}): string => mint({ sub, ...claims })

t.test('addHook takes the four names only, and only before the app is ready', async t => {
  const app = await buildApp(configWith({ logLevel: 'silent', port: 0 }))
  t.teardown(() => app.close())
  t.throws(() => app.realtime.addHook('onMessage' as 'onConnect', () => {}), { code: 'REALTIME_HOOK_REGISTRATION', message: /unknown realtime hook "onMessage"; the hooks are onConnect, onSubscribe, onPublish, onDisconnect/ })
  t.throws(() => app.realtime.addHook('onConnect', 'nope' as never), { message: /must be a function/ })
  app.realtime.addHook('onConnect', () => {})
  await app.ready()
  t.throws(() => app.realtime.addHook('onPublish', () => {}), { message: /before the app is ready/ })
})

t.test('onConnect: sees the identity, the upgrade request and the connection id; refusals are HTTP errors or 44xx closes', async t => {
  const seen: ConnectContext[] = []
  const server = await serve(t, app => {
    app.realtime.addHook('onConnect', async ctx => {
      seen.push(ctx as ConnectContext)
      const user = ctx.identity.user
      if (user === 'banned') throw refusal(403, 'banned by the application')
      if (user === 'busy') throw refusal(429, 'too many sessions in the application')
      if (user === 'crash') throw new Error('no statusCode here')
    })
  })
  const alice = await connect(t, `${server.wsUrl}?token=${as('alice')}`, { headers: { 'x-tenant': 'acme' } })
  t.equal(seen.length, 1)
  t.equal(seen[0].identity.user, 'alice')
  t.equal((seen[0].request as { headers: Record<string, string> }).headers['x-tenant'], 'acme', 'ctx.request is the upgrade request')
  t.equal(seen[0].connectionId, alice.welcome.connectionId, 'the welcome carries the id the hook was told')

  const banned = await refusedUpgrade(`${server.wsUrl}?token=${as('banned')}`)
  t.equal(banned.status, 403)
  t.match(JSON.parse(banned.body), { code: 'forbidden', message: 'banned by the application' })
  const busy = await refusedUpgrade(`${server.wsUrl}?token=${as('busy')}`)
  t.equal(busy.status, 429)
  t.match(JSON.parse(busy.body), { code: 'rate_limited', message: 'too many sessions in the application' })
  const crash = await refusedUpgrade(`${server.wsUrl}?token=${as('crash')}`)
  t.equal(crash.status, 403, 'an error without a status refuses with 403')

  // ?refusal=close: the same refusal as a close code a browser can read.
  const ws = new WebSocket(`${server.wsUrl}?refusal=close&token=${as('banned')}`)
  const [code, reason] = await new Promise<[number, string]>(resolve => ws.on('close', (c, r) => resolve([c, String(r)])))
  t.equal(code, 4403)
  t.equal(reason, 'banned by the application')
  t.equal(server.app.realtime !== undefined && (await server.app.realtime.info()).nodes[0].connections, 1, 'only alice is connected')
})

t.test('onSubscribe guards subscribe, history and presence, over the websocket and HTTP', async t => {
  const seen: SubscribeContext[] = []
  const server = await serve(t, app => {
    app.realtime.addHook('onSubscribe', async ctx => {
      seen.push(ctx)
      if (ctx.topic === 'public.secret') throw new Error('not for you')
      if (ctx.topic === 'public.gone') throw refusal(404, 'no such room')
    })
  }, { presence: true })
  const alice = await connect(t, `${server.wsUrl}?token=${as('alice')}`)
  t.match(await alice.request({ type: 'subscribe', topic: 'public.news' }), { type: 'ack', topic: 'public.news' })
  t.match(seen.at(-1), { topic: 'public.news', connectionId: alice.welcome.connectionId, identity: { user: 'alice' } })
  for (const type of ['subscribe', 'history', 'presence']) {
    t.match(await alice.request({ type, topic: 'public.secret' }), { type: 'error', code: 'forbidden', message: 'not for you' }, `${type} refused`)
    t.match(await alice.request({ type, topic: 'public.gone' }), { type: 'error', code: 'not_found', message: 'no such room' }, `${type}: the status maps to its code`)
  }
  t.equal(alice.ws.readyState, WebSocket.OPEN, 'refusals leave the connection up')

  // The ACL comes first: the hook is not asked about a topic the token may not read.
  const before = seen.length
  t.match(await alice.request({ type: 'subscribe', topic: 'user.bob.inbox' }), { type: 'error', code: 'forbidden', message: /not allowed/ })
  t.equal(seen.length, before)

  const headers = bearer(as('alice'))
  t.equal((await getJson(`${server.url}/api/topics/public.news/history`, headers)).status, 200)
  t.equal(seen.at(-1)?.connectionId, undefined, 'an HTTP read has no connection')
  for (const path of ['history', 'presence']) {
    const refused = await getJson(`${server.url}/api/topics/public.secret/${path}`, headers)
    t.equal(refused.status, 403, `HTTP ${path} refused`)
    t.match(refused.body, { code: 'forbidden', message: 'not for you' })
    t.equal((await getJson(`${server.url}/api/topics/public.gone/${path}`, headers)).status, 404)
  }
})

t.test('onPublish: refuses, rewrites and is re-checked against the topic schema; host publishes run no hook', async t => {
  const seen: PublishContext[] = []
  const topics = { 'chat.{room}': { schema: { type: 'object', required: ['text'], properties: { text: { type: 'string', maxLength: 20 } } } } }
  const server = await serve(t, app => {
    app.realtime.addHook('onPublish', async ctx => {
      seen.push({ ...ctx })
      const text = (ctx.data as { text: string }).text
      if (text.includes('spam')) throw refusal(400, 'looks like spam')
      if (text === 'long') return { data: { text: 'x'.repeat(30) } }
      return { data: { text: text.replaceAll('darn', '****') } }
    })
    // A second hook sees what the first returned.
    app.realtime.addHook('onPublish', ctx => { if ((ctx.data as { text: string }).text === 'secret') throw new Error('not here') })
  }, { topics, defaultPublish: ['chat.>'], defaultSubscribe: ['chat.>'] })
  const alice = await connect(t, `${server.wsUrl}?token=${as('alice')}`)
  const bob = await connect(t, `${server.wsUrl}?token=${as('bob')}`)
  await bob.request({ type: 'subscribe', topic: 'chat.lobby' })

  t.match(await alice.request({ type: 'publish', topic: 'chat.lobby', data: { text: 'oh darn' } }), { type: 'ack', offset: 1 })
  t.match(await bob.next(frame => frame.type === 'message'), { data: { text: 'oh ****' }, from: 'alice' }, 'the subscriber gets the rewritten data')
  t.match(seen[0], { topic: 'chat.lobby', source: 'ws', identity: { user: 'alice' }, data: { text: 'oh darn' } })

  t.match(await alice.request({ type: 'publish', topic: 'chat.lobby', data: { text: 'buy spam' } }), { type: 'error', code: 'bad_request', message: 'looks like spam' })
  t.match(await alice.request({ type: 'publish', topic: 'chat.lobby', data: { text: 'secret' } }), { type: 'error', code: 'forbidden', message: 'not here' })
  t.match(await alice.request({ type: 'publish', topic: 'chat.lobby', data: { text: 'long' } }), { type: 'error', code: 'bad_request', message: /data\/text must NOT have more than 20 characters/ }, 'replaced data passes the schema again')
  t.match(await alice.request({ type: 'publish', topic: 'chat.lobby', data: { nope: 1 } }), { type: 'error', code: 'bad_request' }, 'the schema comes before the hook')
  t.equal(seen.length, 4, 'the hook never saw the data its schema refused')

  const http = await postJson(`${server.url}/api/publish`, { topic: 'chat.lobby', data: { text: 'darn http' } }, bearer(as('alice')))
  t.equal(http.status, 200)
  t.match(seen.at(-1), { source: 'http' })
  const refused = await postJson(`${server.url}/api/publish`, { topic: 'chat.lobby', data: { text: 'spam http' } }, bearer(as('alice')))
  t.equal(refused.status, 400)
  t.match(refused.body, { code: 'bad_request', message: 'looks like spam' })

  await server.app.realtime.publish('chat.lobby', { text: 'darn host' })
  const hookCalls = seen.length
  const history = await server.app.realtime.history('chat.lobby')
  t.same(history.publications.map(p => JSON.parse(p.frame).data.text), ['oh ****', '**** http', 'darn host'], 'refused publications are nowhere; the host\'s own is as sent')
  t.equal(seen.length, hookCalls)
  await eventually('bob has the three', () => bob.messages().length === 3)
  t.same(bob.messages().map(frame => frame.data.text), ['oh ****', '**** http', 'darn host'])

  // A client's broadcast: the hooks run per topic, all before any is published.
  const topicsOf = async (...names: string[]): Promise<number[]> => await Promise.all(names.map(async name => (await server.app.realtime.history(name)).offset))
  const spam = await postJson(`${server.url}/api/broadcast`, { topics: ['chat.lobby', 'chat.other'], data: { text: 'spam all' } }, bearer(as('alice')))
  t.equal(spam.status, 400)
  t.same(await topicsOf('chat.lobby', 'chat.other'), [3, 0], 'refused for one topic: published to none')
  const both = await postJson(`${server.url}/api/broadcast`, { topics: ['chat.lobby', 'chat.other'], data: { text: 'darn all' } }, bearer(as('alice')))
  t.equal(both.status, 200)
  const [lobby, other] = await Promise.all(['chat.lobby', 'chat.other'].map(async name => (await server.app.realtime.history(name)).publications.at(-1)))
  t.same([JSON.parse(lobby?.frame ?? '{}').data, JSON.parse(other?.frame ?? '{}').data], [{ text: '**** all' }, { text: '**** all' }])
})

t.test('onPublish rewrites once, for every subscriber on every node (two nodes on Redis)', async t => {
  const redisConfig = { redisUrl: REDIS_URL, redisPrefix: redisPrefix(t), defaultPublish: ['chat.>'], defaultSubscribe: ['chat.>'] }
  let calls = 0
  const stamp = (app: FastifyInstance): void => app.realtime.addHook('onPublish', ctx => {
    calls++
    return { data: { ...(ctx.data as object), stamped: 'by-hook' } }
  })
  const one = await serve(t, stamp, { ...redisConfig, nodeId: 'hooks-1' })
  const two = await serve(t, stamp, { ...redisConfig, nodeId: 'hooks-2' })
  const onOne = await connect(t, `${one.wsUrl}?token=${as('carol')}`)
  const onTwo = await connect(t, `${two.wsUrl}?token=${as('dave')}`)
  await onOne.request({ type: 'subscribe', topic: 'chat.x' })
  await onTwo.request({ type: 'subscribe', topic: 'chat.x' })
  t.match(await onOne.request({ type: 'publish', topic: 'chat.x', data: { text: 'hi' } }), { type: 'ack' })
  for (const client of [onOne, onTwo]) {
    t.match(await client.next(frame => frame.type === 'message'), { data: { text: 'hi', stamped: 'by-hook' } })
  }
  t.equal(calls, 1, 'the publishing node ran the hook; the other only delivered')
})

t.test('onDisconnect: every accepted connection, with its close code and reason; a failing hook is logged, never thrown', async t => {
  const seen: DisconnectContext[] = []
  const server = await serve(t, app => {
    app.realtime.addHook('onDisconnect', () => { throw new Error('the hook itself failed') })
    app.realtime.addHook('onDisconnect', async ctx => { seen.push(ctx) })
  })
  const alice = await connect(t, `${server.wsUrl}?token=${as('alice')}`)
  alice.ws.close(1000, 'bye')
  await eventually('the first onDisconnect', () => seen.length === 1)
  t.match(seen[0], { connectionId: alice.welcome.connectionId, code: 1000, reason: 'bye', identity: { user: 'alice' } })

  const bob = await connect(t, `${server.wsUrl}?token=${as('bob')}`)
  await server.app.realtime.disconnect('bob')
  await bob.closed
  await eventually('the second onDisconnect', () => seen.length === 2)
  t.match(seen[1], { connectionId: bob.welcome.connectionId, code: 4003, identity: { user: 'bob' } })

  // The server is fine after the failing hook.
  const carol: Client = await connect(t, `${server.wsUrl}?token=${as('carol')}`)
  carol.send({ type: 'ping', id: 'p' })
  t.match(await carol.next(frame => frame.type === 'pong'), { id: 'p' })
})
