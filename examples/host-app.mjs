// A Fastify app that already runs the design card's plugins (@fastify/jwt, @fastify/rate-limit,
// @fastify/redis, fastify-metrics, @fastify/websocket, @fastify/swagger), with fastify-realtime beside
// them. docs/ecosystem.md shows this file and explains each part; test/ecosystem.test.ts runs it.
//   REDIS_URL=redis://127.0.0.1:6379 APP_SECRET=... API_KEY=... node examples/host-app.mjs
import fastifyJwt from '@fastify/jwt'
import fastifyRateLimit from '@fastify/rate-limit'
import fastifyRedis from '@fastify/redis'
import fastifySwagger from '@fastify/swagger'
import fastifyWebsocket from '@fastify/websocket'
import Fastify from 'fastify'
import fastifyMetrics from 'fastify-metrics'
import { realtime } from 'fastify-realtime'

export async function buildHostApp ({ redisUrl, appSecret, apiKey, redisPrefix = 'rt:', logger = true }) {
  const app = Fastify({ logger })
  await app.register(fastifyJwt, { secret: appSecret }) // signs and verifies your users' tokens
  await app.register(fastifyRateLimit, { max: 100, timeWindow: '1 minute' }) // global: your routes
  await app.register(fastifyRedis, { url: redisUrl }) // app.redis, closed by @fastify/redis
  await app.register(fastifyMetrics, { endpoint: '/metrics' }) // the one /metrics
  await app.register(fastifyWebsocket, { preClose: (done) => done() }) // shared; the plugin drains with 1001
  await app.register(fastifySwagger, { openapi: { info: { title: 'shop', version: '1.0.0' } } })

  // No JWT key of its own: your @fastify/jwt verifies its callers. Its commands run on app.redis.
  await app.register(realtime, { prefix: '/realtime', redis: app.redis, redisPrefix, apiKey, rateLimitMax: 600 })

  // Your routes. A token with the realtime claims: `sub`, and the topics this user may read.
  app.post('/login', async (request, reply) => {
    const user = request.body.user // check a password here
    return { token: await reply.jwtSign({ sub: user, topics: { subscribe: [`orders.${user}`] } }, { expiresIn: '15m' }) }
  })
  app.post('/orders', { onRequest: (request) => request.jwtVerify() }, async (request) => {
    const order = { id: await app.redis.incr(`${redisPrefix}example:order-ids`), status: 'created' }
    await app.realtime.publish(`orders.${request.user.sub}`, order) // to the user's open pages
    return order
  })
  app.get('/echo', { websocket: true }, (socket) => { socket.on('message', (data) => socket.send(data)) })
  return app
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { REDIS_URL, APP_SECRET, API_KEY } = process.env
  const app = await buildHostApp({ redisUrl: REDIS_URL ?? 'redis://127.0.0.1:6379', appSecret: APP_SECRET, apiKey: API_KEY })
  await app.listen({ port: 3000 })
}
