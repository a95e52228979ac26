// A host app that registered @fastify/rate-limit itself (its default `global: true`), before or after
// the plugin: the app starts, our routes are limited by RATE_LIMIT_MAX alone (the host's global limit
// leaves them out, whichever order), the host's routes keep the host's limit, probes, metrics and
// documents stay unlimited; and a refusal by a limiter the host puts on every route itself (a hook of
// its own) is a 429 in the API's error shape, with code rate_limited, never a 500.
import rateLimit from '@fastify/rate-limit'
import Fastify, { type FastifyInstance } from 'fastify'
import { once } from 'node:events'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { kRealtimeNode } from '../plugins/node.js'
import realtime, { type RealtimeOptions } from '../plugins/realtime.js'
import { SECRET, bearer, mint } from './auth-tokens.js'
import { connect, listen, refusedUpgrade } from './helpers.js'

const HOST_MAX = 2
const OUR_MAX = 3
const ours: RealtimeOptions = { prefix: '/rt', jwtSecret: SECRET, defaultPublish: ['>'], defaultSubscribe: ['>'], rateLimitMax: OUR_MAX, logLevel: 'silent' }

/** The limit, remaining and retry-after headers of a response. */
function window (response: Response): Array<string | null> {
  return ['x-ratelimit-limit', 'x-ratelimit-remaining', 'retry-after'].map(name => response.headers.get(name))
}

async function publish (url: string, headers: Record<string, string> = {}): Promise<{ response: Response, body: any }> {
  const response = await fetch(`${url}/rt/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ topic: 'a', data: 1 })
  })
  return { response, body: await response.json() }
}

async function started (t: Test, app: FastifyInstance): Promise<{ app: FastifyInstance, url: string, wsUrl: string }> {
  const url = await listen(t, app)
  return { app, url, wsUrl: `${url.replace('http', 'ws')}/rt/ws` }
}

for (const order of ['before', 'after'] as const) {
  t.test(`a host's global @fastify/rate-limit registered ${order} the plugin: each limiter keeps to its routes`, async t => {
    const app = Fastify()
    // As @fastify/rate-limit's README registers it: global, awaited, before the routes it limits.
    if (order === 'before') await app.register(rateLimit, { max: HOST_MAX, timeWindow: 60000 })
    await app.register(realtime, ours)
    if (order === 'after') await app.register(rateLimit, { max: HOST_MAX, timeWindow: 60000 })
    app.get('/host', async () => ({ ok: true }))
    // The host's app.rateLimit() is its own registration's (ours is encapsulated in our routes' context).
    app.get('/host-hooked', { onRequest: app.rateLimit({ max: 1, timeWindow: 60000 }) }, async () => ({ ok: true }))
    const { url, wsUrl } = await started(t, app)

    // The host's route: the host's limit and headers. Its budget for this IP is spent here.
    const host: Array<[number, string | null]> = []
    for (let i = 0; i <= HOST_MAX; i++) {
      const response = await fetch(`${url}/host`)
      host.push([response.status, response.headers.get('x-ratelimit-limit')])
      await response.arrayBuffer()
    }
    t.same(host, [[200, '2'], [200, '2'], [429, '2']], "the host's limit on the host's route")
    t.equal((await fetch(`${url}/host-hooked`)).status, 200)
    const hooked = await fetch(`${url}/host-hooked`)
    t.same([hooked.status, hooked.headers.get('x-ratelimit-limit'), (await hooked.json()).message],
      [429, '1', 'Rate limit exceeded, retry in 1 minute'], "app.rateLimit() is the host's")

    // Ours: RATE_LIMIT_MAX per user, our headers only, whatever the host's budget for the IP.
    const alice = bearer(mint({ sub: 'alice' }))
    for (let i = 1; i <= OUR_MAX; i++) {
      const { response } = await publish(url, alice)
      t.equal(response.status, 200, `publish ${i}`)
      t.same(window(response), ['3', String(OUR_MAX - i), null], `publish ${i}: our window`)
    }
    const refused = await publish(url, alice)
    t.equal(refused.response.status, 429)
    t.same(window(refused.response).slice(0, 2), ['3', '0'])
    t.ok(Number(refused.response.headers.get('retry-after')) > 0, 'retry-after')
    t.match(refused.body, { statusCode: 429, code: 'rate_limited', error: 'Too Many Requests', message: /^rate limit exceeded: at most 3 requests per window/ })

    // Upgrades count against RATE_LIMIT_MAX, not against the host's limit.
    const token = mint({ sub: 'bob' })
    for (let i = 0; i < OUR_MAX; i++) await connect(t, `${wsUrl}?token=${token}`)
    const upgrade = await refusedUpgrade(`${wsUrl}?token=${token}`)
    t.equal(upgrade.status, 429)
    t.match(JSON.parse(upgrade.body), { code: 'rate_limited', message: /at most 3 requests/ }, 'refused by ours')
    t.same(app[kRealtimeNode].stats.rateLimited, { http: 1, message: 0, connect: 1, bytes: 0 })

    // Probes, metrics and documents: no limit of anyone's, no window headers.
    for (const path of ['/rt/health/live', '/rt/health/ready', '/rt/metrics', '/rt/openapi.json', '/rt/asyncapi.json', '/rt/client.js']) {
      const seen = []
      for (let i = 0; i <= HOST_MAX + 1; i++) {
        const response = await fetch(`${url}${path}`)
        seen.push([response.status, ...window(response)])
        await response.arrayBuffer()
      }
      t.same(seen, Array(HOST_MAX + 2).fill([200, null, null, null]), `${path}: unlimited`)
    }
  })
}

// A limiter the host hooks onto every route itself: its own choice, so it applies to ours too (probes
// included); its refusals come out in the API's error shape. Both kinds of error @fastify/rate-limit
// documents: its default (an Error without a code) and an errorResponseBuilder's plain object.
const builders = {
  'its default error': undefined,
  'a plain object from errorResponseBuilder': (_request: unknown, context: { statusCode: number, after: string }) =>
    ({ statusCode: context.statusCode, error: 'Too Many Requests', message: `slow down, retry in ${context.after}` })
}
for (const [label, errorResponseBuilder] of Object.entries(builders)) {
  t.test(`a host hook's refusal on our routes (${label}) is a 429 with code rate_limited`, async t => {
    const app = Fastify()
    await app.register(rateLimit, { global: false, errorResponseBuilder })
    app.addHook('onRequest', app.rateLimit({ max: 1, timeWindow: 60000 }))
    await app.register(realtime, ours)
    const { url, wsUrl } = await started(t, app)

    const carol = bearer(mint({ sub: 'carol' }))
    t.equal((await publish(url, carol)).response.status, 200)
    const refused = await publish(url, carol)
    t.equal(refused.response.status, 429)
    t.ok(Number(refused.response.headers.get('retry-after')) > 0, "the host's retry-after")
    t.same(refused.body, {
      statusCode: 429,
      code: 'rate_limited',
      error: 'Too Many Requests',
      message: errorResponseBuilder === undefined ? 'Rate limit exceeded, retry in 1 minute' : 'slow down, retry in 1 minute'
    })
    const token = mint({ sub: 'carol' })
    const upgrade = await refusedUpgrade(`${wsUrl}?token=${token}`)
    t.equal(upgrade.status, 429)
    t.match(JSON.parse(upgrade.body), { statusCode: 429, code: 'rate_limited' }, 'an upgrade refused by it too')
    // Refused before @fastify/websocket's own hook ran: ?refusal=close is honoured all the same.
    const ws = new WebSocket(`${wsUrl}?token=${token}&refusal=close`)
    const [code, reason] = await once(ws, 'close') as [number, Buffer]
    t.same([code, String(reason)], [4429, refused.body.message], 'refusal=close: 4429 with the message')
    const metrics = await fetch(`${url}/rt/metrics`)
    t.equal(metrics.status, 429, 'its hook runs on every route')
    t.match(await metrics.json(), { code: 'rate_limited' })
  })
}
