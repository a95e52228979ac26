// Embedding (docs/auth.md): a host that registers @fastify/jwt itself, before or after us; a
// host that verifies callers its own way (`verify`); the auth plugin on its own.
import fastifyJwt from '@fastify/jwt'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import t, { type Test } from 'tap'
import auth from '../plugins/auth.js'
import realtime from '../plugins/realtime.js'
import { identityFromClaims } from '../src/core/auth/claims.js'
import { configWith } from '../src/config.js'
import type { Identity } from '../src/core/identity.js'
import { bearer, mint, SECRET } from './auth-tokens.js'
import { connect, getJson, postJson, refusedUpgrade } from './helpers.js'

const HOST_SECRET = 'the-host-application-has-its-own-secret'

async function listen (t: Test, app: FastifyInstance): Promise<{ url: string, wsUrl: string }> {
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP')
  const url = `http://127.0.0.1:${address.port}`
  return { url, wsUrl: `${url.replace('http', 'ws')}/rt/ws` }
}

t.test('a host that registered @fastify/jwt first keeps it; realtime verifies with its own key', async t => {
  const app = Fastify()
  await app.register(fastifyJwt, { secret: HOST_SECRET })
  app.get('/me', async (request) => await request.jwtVerify())
  await app.register(realtime, { jwtSecret: SECRET, prefix: '/rt' })
  const server = await listen(t, app)

  const hostToken = app.jwt.sign({ sub: 'host-user' })
  t.equal((app.jwt as unknown as Record<string, unknown>).realtime, undefined, 'our namespaced @fastify/jwt is not left on the host\'s jwt')
  const me = await getJson(`${server.url}/me`, bearer(hostToken))
  t.equal(me.status, 200, 'the host\'s own verification still works')
  t.equal(me.body.sub, 'host-user')
  t.equal((await getJson(`${server.url}/me`, bearer(mint({ sub: 'x' })))).status, 401, 'the host does not accept realtime tokens')

  t.equal((await connect(t, `${server.wsUrl}?token=${mint({ sub: 'alice' })}`)).welcome.user, 'alice')
  const refused = await refusedUpgrade(`${server.wsUrl}?token=${hostToken}`)
  t.equal(refused.status, 401, 'realtime does not accept host tokens')
  t.match(JSON.parse(refused.body).message, /signature/)
})

t.test('a host may register @fastify/jwt after realtime', async t => {
  const app = Fastify()
  await app.register(realtime, { jwtSecret: SECRET, prefix: '/rt' })
  await app.register(fastifyJwt, { secret: HOST_SECRET })
  app.get('/me', async (request) => await request.jwtVerify())
  const server = await listen(t, app)
  t.equal((await getJson(`${server.url}/me`, bearer(app.jwt.sign({ sub: 'h' })))).status, 200)
  t.equal((await connect(t, server.wsUrl, { headers: bearer(mint({ sub: 'alice' })) })).welcome.user, 'alice')
})

t.test('verify option: the host decides who connects; the API key and revocation still apply', async t => {
  const app = Fastify()
  const verify = (request: FastifyRequest): Identity => {
    const user = request.headers['x-session-user']
    if (typeof user !== 'string') throw new Error('no session: log in first')
    if (user === 'banned') throw Object.assign(new Error('banned'), { statusCode: 403 })
    return { user, admin: false, subscribe: ['rooms.>'], publish: ['rooms.>'], expiresAt: null, jti: `session-${user}` }
  }
  // production: a host verifier is a real check, so this does not count as running open.
  await app.register(realtime, { production: true, apiKey: 'k', verify, prefix: '/rt' })
  const server = await listen(t, app)

  const refused = await refusedUpgrade(server.wsUrl)
  t.equal(refused.status, 401)
  t.match(JSON.parse(refused.body), { code: 'unauthorized', message: 'no session: log in first' })
  t.equal((await refusedUpgrade(server.wsUrl, { headers: { 'x-session-user': 'banned' } })).status, 403)

  const carol = await connect(t, server.wsUrl, { headers: { 'x-session-user': 'carol' } })
  t.equal(carol.welcome.user, 'carol')
  t.match(await carol.request({ type: 'subscribe', topic: 'rooms.1' }), { type: 'ack' })
  t.match(await carol.request({ type: 'subscribe', topic: 'public.news' }), { code: 'forbidden' })
  t.match(await carol.request({ type: 'refresh', token: 'anything' }), { code: 'bad_request' }, 'no token verifier: refresh refused')

  t.equal((await postJson(`${server.url}/rt/api/publish`, { topic: 'rooms.1', data: 1 }, { 'x-session-user': 'dave' })).status, 200)
  t.equal((await getJson(`${server.url}/rt/api/info`, { 'x-api-key': 'k' })).status, 200, 'the API key is still admin')
  t.equal((await postJson(`${server.url}/rt/api/revoke`, { jti: 'session-dave' }, { 'x-api-key': 'k' })).status, 200)
  t.equal((await refusedUpgrade(server.wsUrl, { headers: { 'x-session-user': 'dave' } })).status, 401, 'revocation applies to host identities with a jti')
})

t.test('verify option built on the host\'s @fastify/jwt (request.jwtVerify + identityFromClaims)', async t => {
  const app = Fastify()
  await app.register(fastifyJwt, { secret: HOST_SECRET })
  const config = configWith({})
  await app.register(realtime, {
    prefix: '/rt',
    verify: async (request) => identityFromClaims(await request.jwtVerify(), config),
    verifyToken: (token) => identityFromClaims(app.jwt.verify(token), config)
  })
  const server = await listen(t, app)
  const token = app.jwt.sign({ sub: 'erin' }, { expiresIn: 60 })
  const client = await connect(t, server.wsUrl, { headers: bearer(token) })
  t.equal(client.welcome.user, 'erin')
  t.match(await client.request({ type: 'refresh', token: app.jwt.sign({ sub: 'erin' }, { expiresIn: 120 }) }), { type: 'ack' })
  t.match(await client.request({ type: 'refresh', token: app.jwt.sign({ sub: 'eve' }) }), { code: 'forbidden' })
  // @fastify/jwt answers a malformed header with 400; the contract says 401.
  const malformed = await refusedUpgrade(server.wsUrl, { headers: { authorization: 'Bearer two parts' } })
  t.equal(malformed.status, 401)
  t.equal((await refusedUpgrade(server.wsUrl)).status, 401)
})

t.test('a verifyToken that answers with a promise: upgrades, refusals, refresh and revocation as with a synchronous one', async t => {
  // The token verifier answers synchronously on the usual path (our own @fastify/jwt), with no await
  // per connect; a host's asynchronous one must still be awaited, and its rejections still be 401s.
  const app = Fastify()
  await app.register(fastifyJwt, { secret: HOST_SECRET })
  const config = configWith({})
  await app.register(realtime, {
    prefix: '/rt',
    apiKey: 'k',
    verifyToken: async (token) => {
      await new Promise(resolve => setImmediate(resolve))
      return identityFromClaims(app.jwt.verify(token), config)
    }
  })
  const server = await listen(t, app)
  const client = await connect(t, server.wsUrl, { headers: bearer(app.jwt.sign({ sub: 'fay', jti: 'fay-1' }, { expiresIn: 60 })) })
  t.equal(client.welcome.user, 'fay')
  t.ok(client.welcome.expiresAt > Date.now(), 'the identity the promise resolved to, expiry included')
  t.match(await client.request({ type: 'refresh', token: app.jwt.sign({ sub: 'fay' }, { expiresIn: 120 }) }), { type: 'ack' })
  const rejected = await refusedUpgrade(server.wsUrl, { headers: bearer(mint({ sub: 'fay' })) })
  t.equal(rejected.status, 401, 'a rejection is a 401')
  t.match(JSON.parse(rejected.body), { code: 'unauthorized', message: 'invalid token signature' })
  t.equal((await postJson(`${server.url}/rt/api/revoke`, { jti: 'fay-2' }, { 'x-api-key': 'k' })).status, 200)
  const revoked = await refusedUpgrade(server.wsUrl, { headers: bearer(app.jwt.sign({ sub: 'fay', jti: 'fay-2' }, { expiresIn: 60 })) })
  t.equal(revoked.status, 401)
  t.match(JSON.parse(revoked.body), { message: 'token revoked' })
})

t.test('the auth plugin on its own decorates realtimeAuth.authenticate', async t => {
  const app = Fastify()
  await app.register(auth, { config: configWith({ jwtSecret: SECRET, apiKey: 'k' }) })
  app.get('/whoami', async (request) => await app.realtimeAuth.authenticate(request))
  const server = await listen(t, app)
  const me = await getJson(`${server.url}/whoami`, bearer(mint({ sub: 'alice', topics: { subscribe: ['a.>'] } })))
  t.equal(me.status, 200)
  t.match(me.body, { user: 'alice', admin: false, subscribe: ['a.>'], publish: ['user.{sub}.>'] })
  t.match((await getJson(`${server.url}/whoami`, { 'x-api-key': 'k' })).body, { user: null, admin: true })
  t.ok(app.realtimeAuth.enforced)
  // Without our routes' error handler, Fastify's default one still answers 401.
  const anonymous = await getJson(`${server.url}/whoami`)
  t.equal(anonymous.status, 401)
  t.match(anonymous.body, { code: 'unauthorized', message: /missing token/ })
})

t.test('open mode refuses to start with NODE_ENV=production', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(realtime, { production: true })
  // Refused when the app gets ready: a host could still register @fastify/jwt after the plugin.
  await t.rejects(async () => { await app.ready() }, { message: /refusing to start open with NODE_ENV=production/ })
})

/** A host app that signs its users' tokens with its own @fastify/jwt, and the plugin with no key of its own. */
async function hostWithJwt (t: Test, order: 'jwt first' | 'jwt after', extra: Record<string, unknown> = {}): Promise<{ app: FastifyInstance, url: string, wsUrl: string, lines: string[] }> {
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { lines.push(line) } } } })
  const registerJwt = async (): Promise<void> => { await app.register(fastifyJwt, { secret: HOST_SECRET }) }
  if (order === 'jwt first') await registerJwt()
  await app.register(realtime, { prefix: '/rt', apiKey: 'k', ...extra })
  if (order === 'jwt after') await registerJwt()
  app.get('/me', async (request) => await request.jwtVerify())
  return { app, lines, ...await listen(t, app) }
}

for (const order of ['jwt first', 'jwt after'] as const) {
  t.test(`no key of its own: the host's @fastify/jwt verifies upgrades, API calls and refresh (${order})`, async t => {
    const { app, url, wsUrl, lines } = await hostWithJwt(t, order)
    const token = app.jwt.sign({ sub: 'hank', topics: { publish: ['orders.>'] } }, { expiresIn: 60 })
    t.ok(app.realtimeAuth.enforced, 'the server does not run open')
    const start = lines.map(line => JSON.parse(line)).find(entry => typeof entry.msg === 'string' && entry.msg.startsWith('realtime node'))
    t.equal(start?.auth, 'host @fastify/jwt', 'the start-up line says who verifies')
    t.notOk(lines.some(line => line.includes('running OPEN')), 'no open-mode warning')

    const client = await connect(t, wsUrl, { headers: bearer(token) })
    t.equal(client.welcome.user, 'hank', 'a host-signed token opens a websocket')
    t.match(await client.request({ type: 'refresh', token: app.jwt.sign({ sub: 'hank' }, { expiresIn: 120 }) }), { type: 'ack' }, 'and refreshes it')
    t.equal((await postJson(`${url}/rt/api/publish`, { topic: 'orders.1', data: 1 }, bearer(token))).status, 200, 'a host-signed token publishes within its topics claim')
    t.equal((await postJson(`${url}/rt/api/publish`, { topic: 'other.1', data: 1 }, bearer(token))).status, 403, 'and not outside it')

    const foreign = await refusedUpgrade(`${wsUrl}?token=${mint({ sub: 'mallory' })}`)
    t.equal(foreign.status, 401, 'a token signed with another key is refused')
    t.match(JSON.parse(foreign.body), { code: 'unauthorized', message: 'invalid token signature' })
    t.equal((await refusedUpgrade(wsUrl)).status, 401, 'no token: 401')
    t.equal((await getJson(`${url}/me`, bearer(token))).status, 200, 'the host\'s own request.jwtVerify() is untouched')
  })
}

t.test('no key of its own, host @fastify/jwt: production starts (the host verifies)', async t => {
  const { app } = await hostWithJwt(t, 'jwt first', { production: true })
  t.ok(app.realtimeAuth.enforced)
})

t.test('an unknown option stops the registration, naming the closest known one', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(realtime, { jwtSecert: SECRET } as never) }, {
    name: 'ConfigError',
    message: 'invalid configuration: jwtSecert is not an option of fastify-realtime; did you mean jwtSecret (JWT_SECRET)?'
  })
  const other = Fastify()
  t.teardown(() => other.close())
  await t.rejects(async () => { await other.register(realtime, { prefix: '/rt', somethingElse: true } as never) }, { message: /somethingElse is not an option of fastify-realtime$/ }, 'no far-fetched suggestion')
})
