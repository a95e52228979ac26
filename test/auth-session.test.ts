// A connection's life under a token (docs/protocol.md §2-§4): expiry (4001) and refresh, revocation and
// kick (4003, then refused), the API key, the admin routes, origins.
import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { bearer, mint, nowSeconds, SECRET, type Claims } from './auth-tokens.js'
import { connect, getJson, postJson, refusedUpgrade, startServer, type Client } from './helpers.js'

const API_KEY = 'admin-key-for-tests'
const admin = { 'x-api-key': API_KEY }

/** The close event, or a failure after `ms`. */
async function closedWithin (client: Client, ms: number): Promise<{ code: number, reason: string }> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`not closed within ${ms} ms`)), ms) })
  try {
    return await Promise.race([client.closed, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Resolves once the wall clock has passed `epochMs`. */
async function until (epochMs: number): Promise<void> {
  while (Date.now() <= epochMs) await sleep(Math.min(100, epochMs - Date.now() + 1))
}

async function stillOpen (t: Test, client: Client): Promise<void> {
  client.send({ type: 'ping', id: 'alive' })
  t.match(await client.next(frame => frame.type === 'pong' && frame.id === 'alive'), { type: 'pong' }, 'still answers')
}

t.test('expiry and refresh', async t => {
  const server = await startServer(t, { jwtSecret: SECRET, apiKey: API_KEY })
  const token = (claims: Claims): string => `${server.wsUrl}?token=${mint({ sub: 'alice', ...claims })}`

  t.test('welcome.expiresAt is the token\'s exp in ms; null without exp', async t => {
    const exp = nowSeconds() + 120
    t.equal((await connect(t, token({ exp }))).welcome.expiresAt, exp * 1000)
    t.equal((await connect(t, token({ exp: null }))).welcome.expiresAt, null)
  })

  t.test('without a refresh the connection closes with 4001 at expiry', async t => {
    const exp = nowSeconds() + 2
    const client = await connect(t, token({ exp }))
    const closed = await closedWithin(client, 6000)
    t.equal(closed.code, 4001)
    t.match(closed.reason, /expired/)
    t.ok(Date.now() >= exp * 1000, 'not before the token expired')
  })

  t.test('a refresh before expiry keeps the connection past the first token\'s exp', async t => {
    const firstExp = nowSeconds() + 2
    const client = await connect(t, token({ exp: firstExp }))
    await client.request({ type: 'subscribe', topic: 'user.alice.inbox' })
    const secondExp = nowSeconds() + 60
    const ack = await client.request({ type: 'refresh', token: mint({ sub: 'alice', exp: secondExp }) })
    t.match(ack, { type: 'ack', expiresAt: secondExp * 1000 })
    await until(firstExp * 1000 + 1000)
    await stillOpen(t, client)
    // The subscription survived the refresh and still delivers.
    await postJson(`${server.url}/api/publish`, { topic: 'user.alice.inbox', data: 'after' }, admin)
    t.match(await client.next(frame => frame.type === 'message'), { data: 'after' })
  })

  t.test('a refresh for another sub is forbidden, and the connection keeps its first token (and expiry)', async t => {
    const exp = nowSeconds() + 2
    const client = await connect(t, token({ exp }))
    const reply = await client.request({ type: 'refresh', token: mint({ sub: 'mallory', exp: nowSeconds() + 60 }) })
    t.match(reply, { type: 'error', code: 'forbidden', message: /another user/ })
    t.match(await client.request({ type: 'subscribe', topic: 'user.mallory.inbox' }), { code: 'forbidden' }, 'not mallory\'s rights')
    t.equal((await closedWithin(client, 6000)).code, 4001, 'the first token still expires')
  })

  t.test('an invalid refresh token gets unauthorized and the connection stays up', async t => {
    const client = await connect(t, token({}))
    t.match(await client.request({ type: 'refresh', token: 'garbage' }), { type: 'error', code: 'unauthorized', message: /malformed/ })
    t.match(await client.request({ type: 'refresh', token: mint({ sub: 'alice', exp: nowSeconds() - 5 }) }), { code: 'unauthorized', message: /expired/ })
    t.match(await client.request({ type: 'refresh', token: mint({ sub: 'alice' }, { key: 'not-the-secret-but-32-bytes-long!!' }) }), { code: 'unauthorized', message: /signature/ })
    t.match(await client.request({ type: 'refresh', token: mint({ sub: 'alice' }, { alg: 'none' }) }), { code: 'unauthorized' })
    await stillOpen(t, client)
  })

  t.test('a refresh can replace the ACL (same sub)', async t => {
    const client = await connect(t, token({}))
    t.match(await client.request({ type: 'subscribe', topic: 'chat.room1' }), { code: 'forbidden' })
    await client.request({ type: 'refresh', token: mint({ sub: 'alice', topics: { subscribe: ['chat.*'] } }) })
    t.match(await client.request({ type: 'subscribe', topic: 'chat.room1' }), { type: 'ack' })
  })

  t.test('a refresh with a revoked token is unauthorized', async t => {
    const client = await connect(t, token({}))
    t.equal((await postJson(`${server.url}/api/revoke`, { jti: 'refresh-revoked' }, admin)).status, 200)
    t.match(await client.request({ type: 'refresh', token: mint({ sub: 'alice', jti: 'refresh-revoked' }) }), { code: 'unauthorized', message: /revoked/ })
  })
})

t.test('open mode: refresh is a bad_request, expiresAt is null', async t => {
  const server = await startServer(t)
  const client = await connect(t, server.wsUrl)
  t.equal(client.welcome.expiresAt, null)
  t.match(await client.request({ type: 'refresh', token: mint({ sub: 'alice' }) }), { code: 'bad_request', message: /no JWT key/ })
})

t.test('revoke: the token\'s connections close with 4003, then it is refused on connect and HTTP', async t => {
  const server = await startServer(t, { jwtSecret: SECRET, apiKey: API_KEY })
  const revokedToken = mint({ sub: 'alice', jti: 'jti-1' })
  const first = await connect(t, `${server.wsUrl}?token=${revokedToken}`)
  const second = await connect(t, server.wsUrl, { headers: bearer(revokedToken) })
  const otherToken = await connect(t, `${server.wsUrl}?token=${mint({ sub: 'alice', jti: 'jti-2' })}`)

  const response = await postJson(`${server.url}/api/revoke`, { jti: 'jti-1', expiresAt: (nowSeconds() + 60) * 1000 }, admin)
  t.equal(response.status, 200)
  t.same(response.body, {})
  for (const client of [first, second]) {
    const closed = await closedWithin(client, 5000)
    t.equal(closed.code, 4003)
    t.match(closed.reason, /revoked/)
  }
  await stillOpen(t, otherToken)

  const upgrade = await refusedUpgrade(`${server.wsUrl}?token=${revokedToken}`)
  t.equal(upgrade.status, 401)
  t.match(JSON.parse(upgrade.body).message, /token revoked/)
  const http = await postJson(`${server.url}/api/publish`, { topic: 'user.alice.x', data: 1 }, bearer(revokedToken))
  t.equal(http.status, 401)
  t.match(http.body.message, /token revoked/)
})

t.test('a revocation lasts until expiresAt', async t => {
  const server = await startServer(t, { jwtSecret: SECRET, apiKey: API_KEY })
  const token = mint({ sub: 'alice', jti: 'short-lived-revocation' })
  const revokedUntil = Date.now() + 1500
  t.equal((await postJson(`${server.url}/api/revoke`, { jti: 'short-lived-revocation', expiresAt: revokedUntil }, admin)).status, 200)
  t.equal((await refusedUpgrade(`${server.wsUrl}?token=${token}`)).status, 401)
  await until(revokedUntil + 50)
  const client = await connect(t, `${server.wsUrl}?token=${token}`)
  t.equal(client.welcome.user, 'alice', 'accepted again once the revocation lapsed')
})

t.test('disconnect: the user\'s connections close with 4003; others stay; the user may connect again', async t => {
  const server = await startServer(t, { jwtSecret: SECRET, apiKey: API_KEY })
  const bob1 = await connect(t, `${server.wsUrl}?token=${mint({ sub: 'bob' })}`)
  const bob2 = await connect(t, `${server.wsUrl}?token=${mint({ sub: 'bob', jti: 'b2' })}`)
  const alice = await connect(t, `${server.wsUrl}?token=${mint({ sub: 'alice' })}`)
  const response = await postJson(`${server.url}/api/disconnect`, { user: 'bob' }, admin)
  t.equal(response.status, 200)
  t.same(response.body, {})
  for (const client of [bob1, bob2]) {
    const closed = await closedWithin(client, 5000)
    t.equal(closed.code, 4003)
    t.match(closed.reason, /disconnected/)
  }
  await stillOpen(t, alice)
  const again = await connect(t, `${server.wsUrl}?token=${mint({ sub: 'bob' })}`)
  t.equal(again.welcome.user, 'bob', 'a kick is not a ban: revoke the token for that')
})

t.test('admin routes: API key or admin token; others get 401/403; bodies are validated naming the field', async t => {
  const server = await startServer(t, { jwtSecret: SECRET, apiKey: API_KEY })
  const user = bearer(mint({ sub: 'alice' }))
  const adminToken = bearer(mint({ sub: 'root', admin: true }))

  t.equal((await getJson(`${server.url}/api/info`, admin)).status, 200, 'the API key is admin')
  t.equal((await getJson(`${server.url}/api/info`, adminToken)).status, 200, 'an admin token is admin')
  const forbidden = await getJson(`${server.url}/api/info`, user)
  t.equal(forbidden.status, 403, 'a non-admin token is forbidden')
  t.match(forbidden.body, { code: 'forbidden', message: /admin only/ })
  t.equal((await getJson(`${server.url}/api/info`)).status, 401)

  for (const route of ['/api/revoke', '/api/disconnect']) {
    t.equal((await postJson(`${server.url}${route}`, {}, user)).status, 403, `${route}: non-admin token, before body validation`)
    t.equal((await postJson(`${server.url}${route}`, {})).status, 401, `${route}: no credentials`)
  }
  const noJti = await postJson(`${server.url}/api/revoke`, {}, admin)
  t.equal(noJti.status, 400)
  t.match(noJti.body.message, /jti/)
  const badExpiry = await postJson(`${server.url}/api/revoke`, { jti: 'x', expiresAt: 'tomorrow' }, admin)
  t.equal(badExpiry.status, 400)
  t.match(badExpiry.body.message, /expiresAt/)
  const seconds = await postJson(`${server.url}/api/revoke`, { jti: 'x', expiresAt: nowSeconds() + 60 }, adminToken)
  t.equal(seconds.status, 400)
  t.match(seconds.body.message, /expiresAt is milliseconds.*seconds/)
  const noUser = await postJson(`${server.url}/api/disconnect`, { user: '' }, admin)
  t.equal(noUser.status, 400)
  t.match(noUser.body.message, /user/)

  // The API key also opens a websocket, as an admin without a user.
  const service = await connect(t, server.wsUrl, { headers: admin })
  t.equal(service.welcome.user, null)
  t.match(await service.request({ type: 'subscribe', topic: 'user.alice.inbox' }), { type: 'ack' })
})

t.test('ALLOWED_ORIGINS: another origin gets 403 before the upgrade; listed origins and non-browsers connect', async t => {
  const server = await startServer(t, { jwtSecret: SECRET, allowedOrigins: ['https://app.example.com'] })
  const url = `${server.wsUrl}?token=${mint({ sub: 'alice' })}`
  const refused = await refusedUpgrade(url, { origin: 'https://evil.example.com' })
  t.equal(refused.status, 403)
  t.match(JSON.parse(refused.body), { code: 'forbidden', message: /origin not allowed/ })
  t.equal((await refusedUpgrade(`${server.wsUrl}?token=x`, { origin: 'https://evil.example.com' })).status, 403, 'checked before the token')
  t.equal((await connect(t, url, { origin: 'https://app.example.com' })).welcome.user, 'alice')
  t.equal((await connect(t, url, { origin: 'https://APP.example.com' })).welcome.user, 'alice', 'host names are case-insensitive')
  t.equal((await connect(t, url)).welcome.user, 'alice', 'no Origin header: not a browser')
})
