// docs/ecosystem.md's example, run as a user would: examples/host-app.mjs, a host app that already
// registered @fastify/jwt, @fastify/rate-limit, @fastify/redis, fastify-metrics, @fastify/websocket and
// @fastify/swagger, with the realtime plugin beside them (imported as the package, from dist/).
import { readFileSync } from 'node:fs'
import t from 'tap'
import WebSocket from 'ws'
import { REDIS_URL, redisPrefix } from './fixtures/cluster.js'
import { mint } from './auth-tokens.js'
import { connect, getJson, postJson, refusedUpgrade } from './helpers.js'

const EXAMPLE = new URL('../examples/host-app.mjs', import.meta.url)
const APP_SECRET = 'the-shop-signs-its-users-tokens-with-this-secret'

t.test('docs/ecosystem.md shows the example file as it is', async t => {
  const doc = readFileSync(new URL('../docs/ecosystem.md', import.meta.url), 'utf8')
  t.ok(doc.includes('```js\n' + readFileSync(EXAMPLE, 'utf8') + '```'), 'the whole file, in one js block')
})

t.test('the host app with every plugin of the design card, and the realtime plugin beside them', async t => {
  const { buildHostApp } = await import(EXAMPLE.href) as { buildHostApp: (options: Record<string, unknown>) => Promise<any> }
  const prefix = redisPrefix(t)
  const app = await buildHostApp({ redisUrl: REDIS_URL, appSecret: APP_SECRET, apiKey: 'ops-key', redisPrefix: prefix, logger: false })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const wsUrl = `${url.replace('http', 'ws')}/realtime/ws`

  // @fastify/jwt: the host signs, the realtime plugin accepts its tokens and their topics claim.
  const login = await postJson(`${url}/login`, { user: 'alice' })
  t.equal(login.status, 200)
  const token: string = login.body.token
  const alice = await connect(t, `${wsUrl}?token=${token}`)
  t.equal(alice.welcome.user, 'alice', "a token signed by the host's @fastify/jwt opens a websocket")
  t.match(await alice.request({ type: 'subscribe', topic: 'orders.alice' }), { type: 'ack' })
  t.match(await alice.request({ type: 'subscribe', topic: 'orders.bob' }), { code: 'forbidden' }, "the token's topics claim applies")
  t.equal((await refusedUpgrade(`${wsUrl}?token=${mint({ sub: 'mallory' })}`)).status, 401, 'a token the host did not sign is refused')

  // @fastify/redis: the order id comes from app.redis, and the publication goes through it too.
  const order = await postJson(`${url}/orders`, {}, { authorization: `Bearer ${token}` })
  t.equal(order.status, 200)
  const message = await alice.next(frame => frame.type === 'message')
  t.match(message, { topic: 'orders.alice', offset: 1, data: { id: order.body.id, status: 'created' } }, 'the page gets the order')
  const keys = await app.redis.keys(`${prefix}*`) as string[]
  t.ok(keys.some(key => key.includes('example:order-ids')) && keys.some(key => !key.includes('example:')), "the host's keys and the plugin's share app.redis")

  // @fastify/rate-limit: the host's global limit (100 per minute) on its routes, RATE_LIMIT_MAX on ours.
  const publish = await postJson(`${url}/realtime/api/publish`, { topic: 'public.news', data: 1 }, { 'x-api-key': 'ops-key' })
  t.equal(publish.status, 200)
  const ours = await fetch(`${url}/realtime/api/topics/public.news/history`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(ours.headers.get('x-ratelimit-limit'), '600', "the realtime routes carry only the plugin's limit")
  // fastify-metrics: one /metrics, the host's, with the realtime series in its registry.
  const metrics = await (await fetch(`${url}/metrics`)).text()
  t.match(metrics, /^realtime_connections\{transport="websocket"\} 1$/m)
  t.match(metrics, /http_request_duration_seconds_count\{[^}]*route="\/realtime\/api\/publish"/)
  t.equal((await fetch(`${url}/realtime/metrics`)).status, 404, 'no second metrics endpoint')

  // @fastify/websocket: the host's own websocket route works beside ours.
  const echo = new WebSocket(`${url.replace('http', 'ws')}/echo`)
  t.teardown(() => echo.close())
  await new Promise(resolve => echo.once('open', resolve))
  echo.send('ping')
  t.equal(String(await new Promise(resolve => echo.once('message', resolve))), 'ping')

  // @fastify/swagger: the host's document lists the realtime routes too.
  t.ok(Object.keys(app.swagger().paths).includes('/realtime/api/publish'))

  // Last: the host's limit counts per IP, and its /metrics and /echo are its routes too.
  let refused: { status: number, body: any } | undefined
  for (let i = 0; i < 101 && refused === undefined; i++) {
    const response = await postJson(`${url}/login`, { user: 'bob' })
    if (response.status !== 200) refused = response
  }
  t.match(refused, { status: 429 }, "the host's own routes keep the host's limit")
  t.equal((await getJson(`${url}/realtime/health/ready`)).status, 200, 'health is limited by neither')
})
