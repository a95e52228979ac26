// Refused upgrades as close codes (`?refusal=close`, routes/ws-refusal.ts) and the client's side of
// authentication: refused tokens, getToken, kicks and revocations (4003), refresh before expiry, and
// 4001 with a static token.
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket from 'ws'
import { RealtimeError, type Message } from '../client/index.js'
import { kRealtimeNode } from '../plugins/node.js'
import { bearer, mint, nowSeconds, SECRET, type Claims } from './auth-tokens.js'
import { newClient, record } from './fixtures/client.js'
import { connect, eventually, postJson, refusedUpgrade, startServer, within, type Frame, type Server } from './helpers.js'

const API_KEY = 'admin-key-for-client-tests'
const admin = { 'x-api-key': API_KEY }
const WRONG_KEY = 'not-the-secret-but-at-least-32-bytes-long'

interface ClosedByServer { code: number, reason: string, opened: boolean, frames: Frame[] }

/** A plain `ws` upgrade with ?refusal=close: resolves with the close it gets (an HTTP refusal fails). */
async function refusedByClose (wsUrl: string, options: WebSocket.ClientOptions = {}, query = ''): Promise<ClosedByServer> {
  const ws = new WebSocket(`${wsUrl}?refusal=close${query}`, options)
  const result: ClosedByServer = { code: 0, reason: '', opened: false, frames: [] }
  ws.on('open', () => { result.opened = true })
  ws.on('message', data => result.frames.push(JSON.parse(String(data))))
  ws.on('error', () => {})
  return await within(new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_request, response) => {
      ws.terminate()
      reject(new Error(`refused with HTTP ${response.statusCode ?? 0} instead of a close code`))
    })
    ws.once('close', (code, reason) => resolve({ ...result, code, reason: String(reason) }))
  }), 5000, 'the refused socket\'s close')
}

/** The HTTP refusal's message, to compare with the close reason. */
async function httpRefusal (wsUrl: string, options: WebSocket.ClientOptions = {}, query = ''): Promise<{ status: number, code: string, message: string }> {
  const refused = await refusedUpgrade(`${wsUrl}${query === '' ? '' : `?${query.slice(1)}`}`, options)
  const body = JSON.parse(refused.body)
  return { status: refused.status, code: body.code, message: body.message }
}

/** Every websocket upgrade request the server receives (accepted or refused). */
function countUpgrades (server: Server): IncomingMessage[] {
  const upgrades: IncomingMessage[] = []
  server.app.server.on('upgrade', (request: IncomingMessage) => upgrades.push(request))
  return upgrades
}

/**
 * Gives a client that stopped the time in which it would have reconnected several times over
 * (reconnect delays are at most 100 ms here) if it were going to; the assertions after it are about
 * what did not happen, not about how long anything took.
 */
const RECONNECT_WINDOW_MS = 600

async function rejection (promise: Promise<unknown>): Promise<unknown> {
  return await promise.then(() => { throw new Error('resolved, expected a rejection') }, (error: unknown) => error)
}

t.test('server: ?refusal=close turns refused upgrades into close codes; without it they stay HTTP errors', async t => {
  t.test('4401 for a missing, malformed, wrongly signed, expired or revoked token; the reason is the HTTP message', async t => {
    const server = await startServer(t, { jwtSecret: SECRET, apiKey: API_KEY })
    const revoked = mint({ sub: 'alice', jti: 'revoked-jti' })
    t.equal((await postJson(`${server.url}/api/revoke`, { jti: 'revoked-jti' }, admin)).status, 200)
    const cases: Array<{ name: string, query?: string, options?: WebSocket.ClientOptions, message: RegExp }> = [
      { name: 'missing', message: /^missing token/ },
      { name: 'malformed', query: '&token=garbage', message: /^malformed token/ },
      { name: 'wrong signature', query: `&token=${mint({ sub: 'alice' }, { key: WRONG_KEY })}`, message: /^invalid token signature$/ },
      { name: 'expired (in the header)', options: { headers: bearer(mint({ sub: 'alice', exp: nowSeconds() - 10 })) }, message: /^token expired$/ },
      { name: 'revoked', query: `&token=${revoked}`, message: /^token revoked$/ }
    ]
    for (const { name, query = '', options = {}, message } of cases) {
      const closed = await refusedByClose(server.wsUrl, options, query)
      t.equal(closed.code, 4401, `${name}: 4401`)
      t.match(closed.reason, message, `${name}: the reason`)
      t.ok(closed.opened, `${name}: upgraded, then closed`)
      t.same(closed.frames, [], `${name}: no welcome, nothing at all`)
      const plain = await httpRefusal(server.wsUrl, options, query)
      t.same(plain, { status: 401, code: 'unauthorized', message: closed.reason }, `${name}: plain 401 without refusal=close, same message`)
    }
    t.equal(server.app[kRealtimeNode].hub.connections.size, 0, 'no connection was ever admitted')
    // A good token with refusal=close is an ordinary connection.
    const good = await connect(t, `${server.wsUrl}?refusal=close&token=${mint({ sub: 'alice' })}`)
    t.match(good.welcome, { type: 'welcome', user: 'alice' })
  })

  t.test('4403 for an Origin not in allowedOrigins', async t => {
    const server = await startServer(t, { jwtSecret: SECRET, allowedOrigins: ['https://good.example'] })
    const query = `&token=${mint({ sub: 'alice' })}`
    const closed = await refusedByClose(server.wsUrl, { origin: 'https://evil.example' }, query)
    t.same(closed, { code: 4403, reason: 'origin not allowed (ALLOWED_ORIGINS)', opened: true, frames: [] })
    t.same(await httpRefusal(server.wsUrl, { origin: 'https://evil.example' }, query),
      { status: 403, code: 'forbidden', message: 'origin not allowed (ALLOWED_ORIGINS)' })
    const allowed = await connect(t, `${server.wsUrl}?refusal=close${query}`, { origin: 'https://good.example' })
    t.match(allowed.welcome, { user: 'alice' }, 'an allowed origin connects')
  })

  t.test('4429 over maxConnectionsPerUser', async t => {
    const server = await startServer(t, { jwtSecret: SECRET, maxConnectionsPerUser: 1 })
    const query = `&token=${mint({ sub: 'alice' })}`
    await connect(t, `${server.wsUrl}?refusal=close${query}`)
    const closed = await refusedByClose(server.wsUrl, {}, query)
    t.same(closed, { code: 4429, reason: 'at most 1 connections per user', opened: true, frames: [] })
    t.same(await httpRefusal(server.wsUrl, {}, query), { status: 429, code: 'rate_limited', message: 'at most 1 connections per user' })
    t.equal(server.app[kRealtimeNode].hub.connectionsOf('alice').size, 1, 'still one connection for alice')
  })

  t.test('4429 over the HTTP rate limit (upgrades count against it)', async t => {
    const server = await startServer(t, { rateLimitMax: 2, rateLimitWindow: 60000 })
    await connect(t, `${server.wsUrl}?refusal=close`)
    await connect(t, `${server.wsUrl}?refusal=close`)
    const closed = await refusedByClose(server.wsUrl)
    t.equal(closed.code, 4429)
    t.match(closed.reason, /^rate limit exceeded/)
    t.same(closed.frames, [])
    const plain = await refusedUpgrade(server.wsUrl)
    t.equal(plain.status, 429, 'plain 429 without refusal=close')
    t.match(JSON.parse(plain.body), { code: 'rate_limited', message: /^rate limit exceeded/ })
    t.ok(plain.headers['retry-after'] !== undefined, 'with retry-after')
  })

  t.test('4503 at maxConnections', async t => {
    const server = await startServer(t, { maxConnections: 1 })
    await connect(t, server.wsUrl)
    const closed = await refusedByClose(server.wsUrl)
    t.same(closed, { code: 4503, reason: 'server is at MAX_CONNECTIONS', opened: true, frames: [] })
    t.same(await httpRefusal(server.wsUrl), { status: 503, code: 'unavailable', message: 'server is at MAX_CONNECTIONS' })
  })

  t.test('while draining (app.close() in progress)', async t => {
    // A client that does not answer the close handshake holds the drain open (up to shutdownTimeout - 1 s).
    const server = await startServer(t, { shutdownTimeout: 3000 })
    const stuck = await connect(t, server.wsUrl)
    stuck.ws.on('error', () => {})
    const tcp = (stuck.ws as unknown as { _socket: import('node:net').Socket })._socket
    tcp.pause()
    const closing = server.app.close()
    await eventually('draining', () => server.app[kRealtimeNode].draining)

    const plain = await refusedUpgrade(server.wsUrl)
    t.equal(plain.status, 503, 'plain 503 without refusal=close')
    t.match(JSON.parse(plain.body), { code: 'unavailable', message: /shutting down/ })
    // Documented (docs/protocol.md §2): the drain stops upgrading anything, so that no client can hold
    // the shutdown open; refusal=close cannot apply and the answer stays a plain 503 (1006 in a browser,
    // which reconnects with backoff: the right thing for a node going away).
    const asked = await refusedUpgrade(`${server.wsUrl}?refusal=close`)
    t.equal(asked.status, 503, 'plain 503 with refusal=close too')
    tcp.resume()
    await within(closing, 10000, 'app.close()')
  })
})

t.test('client: a static token the server refuses ends in closed, with no reconnect', async t => {
  const server = await startServer(t, { jwtSecret: SECRET })
  const upgrades = countUpgrades(server)
  const client = newClient(t, server.wsUrl, { token: mint({ sub: 'alice' }, { key: WRONG_KEY }) })
  const log = record(client)
  const error = await rejection(client.connect())
  t.type(error, RealtimeError)
  t.match(error, { code: 'unauthorized', message: 'invalid token signature' }, 'connect() rejects with unauthorized')
  t.equal(client.state, 'closed')
  t.same(log.disconnects, [{ code: 4401, reason: 'invalid token signature', reconnect: false }])
  t.same(log.states, ['connecting', 'closed'])
  // How the client asked: refusal=close in the URL, the token in the header (Node), not in the URL.
  t.equal(upgrades.length, 1)
  const asked = new URL(upgrades[0].url ?? '', server.url)
  t.equal(asked.searchParams.get('refusal'), 'close')
  t.equal(asked.searchParams.get('token'), null)
  t.match(upgrades[0].headers.authorization, /^Bearer /)

  await sleep(RECONNECT_WINDOW_MS)
  t.equal(upgrades.length, 1, 'no reconnect attempt afterwards')
  t.same(log.states, ['connecting', 'closed'])
  await t.rejects(client.publish('user.alice.x', 1), { code: 'closed' }, 'requests reject once closed')
})

t.test('client: getToken gives a refused token, then a good one: it connects', async t => {
  const server = await startServer(t, { jwtSecret: SECRET })
  const upgrades = countUpgrades(server)
  let calls = 0
  const client = newClient(t, server.wsUrl, {
    getToken: async () => ++calls === 1 ? mint({ sub: 'alice', exp: nowSeconds() - 5 }) : mint({ sub: 'alice' })
  })
  const log = record(client)
  const welcome = await within(client.connect(), 5000, 'connect()')
  t.match(welcome, { user: 'alice' })
  t.equal(calls, 2, 'a fresh token after the refusal')
  t.equal(upgrades.length, 2)
  t.same(log.disconnects, [{ code: 4401, reason: 'token expired', reconnect: true }])
  t.same(log.states, ['connecting', 'disconnected', 'connecting', 'connected'])
})

t.test('client: getToken always refused: closed after the second refusal', async t => {
  const server = await startServer(t, { jwtSecret: SECRET })
  const upgrades = countUpgrades(server)
  let calls = 0
  const client = newClient(t, server.wsUrl, { getToken: () => { calls++; return mint({ sub: 'alice' }, { key: WRONG_KEY }) } })
  const log = record(client)
  const error = await rejection(client.connect())
  t.match(error, { code: 'unauthorized' })
  t.equal(client.state, 'closed')
  t.equal(calls, 2, 'getToken was asked twice')
  t.same(log.disconnects, [
    { code: 4401, reason: 'invalid token signature', reconnect: true },
    { code: 4401, reason: 'invalid token signature', reconnect: false }
  ])
  await sleep(RECONNECT_WINDOW_MS)
  t.equal(calls, 2, 'and never again')
  t.equal(upgrades.length, 2)
})

t.test('client: 4003 (kicked or revoked) ends in closed, with no reconnect', async t => {
  const server = await startServer(t, { jwtSecret: SECRET, apiKey: API_KEY })
  const upgrades = countUpgrades(server)

  const kicks: Array<{ name: string, claims: Claims, post: () => Promise<{ status: number }>, reason: string }> = [
    { name: 'POST /api/disconnect', claims: { sub: 'alice' }, post: async () => await postJson(`${server.url}/api/disconnect`, { user: 'alice' }, admin), reason: 'disconnected by the server' },
    { name: 'POST /api/revoke', claims: { sub: 'bob', jti: 'bobs-token' }, post: async () => await postJson(`${server.url}/api/revoke`, { jti: 'bobs-token' }, admin), reason: 'token revoked' }
  ]
  for (const { name, claims, post, reason } of kicks) {
    upgrades.length = 0
    let calls = 0
    // getToken would give a valid token: the client must still not come back.
    const client = newClient(t, server.wsUrl, { getToken: () => { calls++; return mint(claims) } })
    const log = record(client)
    await client.connect()
    const sub = client.subscribe(`user.${String(claims.sub)}.inbox`)
    await eventually(`${name}: subscribed`, () => sub.state === 'subscribed')
    t.equal((await post()).status, 200, `${name}: 200`)
    await eventually(`${name}: closed`, () => client.state === 'closed')
    t.same(log.disconnects, [{ code: 4003, reason, reconnect: false }], `${name}: 4003, no reconnect`)
    t.same(log.states, ['connecting', 'connected', 'closed'])
    await sleep(RECONNECT_WINDOW_MS)
    t.equal(upgrades.length, 1, `${name}: no reconnect attempt`)
    t.equal(calls, 1, `${name}: getToken not asked again`)
    t.equal(client.state, 'closed')
  }
  t.equal(server.app[kRealtimeNode].hub.connections.size, 0)
})

t.test('client: refresh before expiry keeps the same connection past the first token\'s exp', async t => {
  const server = await startServer(t, { jwtSecret: SECRET, apiKey: API_KEY })
  const tokens: number[] = []
  const client = newClient(t, server.wsUrl, {
    getToken: () => {
      const exp = nowSeconds() + 3 // JWT exp is in seconds: 2 to 3 s ahead
      tokens.push(exp)
      return mint({ sub: 'alice', exp })
    }
  })
  const log = record(client)
  const welcome = await client.connect()
  t.equal(welcome.expiresAt, tokens[0] * 1000)
  const firstExpiry = welcome.expiresAt ?? 0
  const sub = client.subscribe('user.alice.inbox')
  const messages: Message[] = []
  sub.on('message', message => messages.push(message))
  await eventually('subscribed', () => sub.state === 'subscribed')

  while (Date.now() <= firstExpiry + 1500) await sleep(100)
  t.equal(client.state, 'connected', 'still connected after the first token expired')
  t.equal(client.welcome?.connectionId, welcome.connectionId, 'on the same connection')
  t.same(log.disconnects, [], 'never disconnected')
  t.ok(tokens.length >= 2, `getToken gave a fresh token for refresh (${tokens.length} calls)`)
  // The refreshed token is short-lived too: the client must refresh again before it expires.
  const secondExpiry = tokens[1] * 1000
  while (Date.now() <= secondExpiry + 500) await sleep(100)
  t.equal(client.welcome?.connectionId, welcome.connectionId, 'still the same connection after the second token\'s exp')
  t.same(log.disconnects, [], 'still never disconnected')
  t.ok(tokens.length >= 3, `refreshed again (${tokens.length} calls)`)
  const connection = [...server.app[kRealtimeNode].hub.connections][0]
  t.equal(server.app[kRealtimeNode].hub.connections.size, 1)
  t.ok((connection.identity.expiresAt ?? 0) > firstExpiry, 'the server runs the connection on a later token')
  t.equal(sub.state, 'subscribed')
  t.equal((await postJson(`${server.url}/api/publish`, { topic: 'user.alice.inbox', data: 'still here' }, admin)).status, 200)
  await eventually('the message', () => messages.length === 1)
  t.match(messages[0], { topic: 'user.alice.inbox', data: 'still here' })
})

t.test('client: 4001 with a static token: closed at expiry, refused on reconnect, closed', async t => {
  const server = await startServer(t, { jwtSecret: SECRET })
  const upgrades = countUpgrades(server)
  const exp = nowSeconds() + 2
  const client = newClient(t, server.wsUrl, { token: mint({ sub: 'alice', exp }) })
  const log = record(client)
  const welcome = await client.connect()
  t.equal(welcome.expiresAt, exp * 1000)
  await eventually('closed', () => client.state === 'closed', 10000)
  t.same(log.disconnects, [
    { code: 4001, reason: 'token expired', reconnect: true },
    { code: 4401, reason: 'token expired', reconnect: false }
  ], 'expired (4001), tried again, refused (4401), stopped')
  t.same(log.states, ['connecting', 'connected', 'disconnected', 'connecting', 'closed'])
  t.equal(upgrades.length, 2)
  await sleep(RECONNECT_WINDOW_MS)
  t.equal(upgrades.length, 2, 'no further attempt')
})
