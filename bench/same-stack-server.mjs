// The same-stack baseline: what a developer would build by hand for our HTTP publish and
// connect with the plugins our server is made of, and no more. It prices ours against the same stack
// rather than against a bare route (bench/bare-fastify-server.mjs) or raw `ws` (bench/raw-ws-server.mjs).
//
// - POST /api/publish: @fastify/jwt verifies the HS256 token (`request.jwtVerify()` in an onRequest
//   hook), then @fastify/rate-limit counts the request in memory (RATE_LIMIT_MAX per RATE_LIMIT_WINDOW
//   ms, keyed like ours: the token's `sub`, else the client IP; its x-ratelimit-* headers on every
//   answer), then Fastify's default validator checks the body against our publish route's schema
//   (routes/publish.ts: topic, data, idempotencyKey, additionalProperties false, which Fastify's Ajv
//   enforces by dropping unknown fields where ours refuses them), and a response schema serializes
//   the answer. The handler does what the bare route's does: answers {ok: true}.
// - GET /ws: an @fastify/websocket upgrade, the same token verified by @fastify/jwt in an onRequest
//   hook before the upgrade (`Authorization: Bearer` or `?token=`, as ours accepts it), then a small
//   welcome frame like ours and raw ws send. Not rate limited (SAME_STACK_WS_LIMIT=on counts upgrades
//   in the same limiter, as ours does, to price that part).
//
// Fastify's logger runs at `warn`, like ours in the benchmark and the bare route (a child logger per request).
// Not carried over from ours: admins exempt from the limit, the inbound byte budget, the publication.
// Env: HOST, PORT; JWT_SECRET (without it nothing is verified and the limiter keys by IP, like ours in
// open mode); RATE_LIMIT_MAX (default 1000), RATE_LIMIT_WINDOW (ms, default 60000), our defaults;
// SAME_STACK_WS_LIMIT=on.
import { randomUUID } from 'node:crypto'
import fastifyJwt from '@fastify/jwt'
import rateLimit from '@fastify/rate-limit'
import websocket from '@fastify/websocket'
import Fastify from 'fastify'
import fastifyMetrics from 'fastify-metrics'
import promClient from 'prom-client'

const secret = process.env.JWT_SECRET
const max = Number(process.env.RATE_LIMIT_MAX ?? 1000)
const timeWindow = Number(process.env.RATE_LIMIT_WINDOW ?? 60000)
const limitUpgrades = process.env.SAME_STACK_WS_LIMIT === 'on'
const withMetrics = process.env.SAME_STACK_METRICS === 'on'
// MAX_PAYLOAD's default: our publish route's body limit and our websocket's maxPayload.
const MAX_PAYLOAD = 65536

// Our publish route's body schema (routes/publish.ts; topicSchema from routes/schemas.ts), copied so
// that the baseline does not depend on our build.
const publishBody = {
  type: 'object',
  required: ['topic', 'data'],
  properties: {
    topic: { type: 'string', minLength: 1, maxLength: 255 },
    data: {},
    idempotencyKey: { type: 'string', minLength: 1, maxLength: 256 }
  },
  additionalProperties: false
}

/** `Authorization: Bearer <jwt>`, else `?token=` (browsers cannot set headers on a websocket). */
function extractToken (request) {
  const authorization = request.headers.authorization
  if (authorization !== undefined && authorization.startsWith('Bearer ')) return authorization.slice(7)
  return request.query?.token
}

const app = Fastify({ logger: { level: 'warn' } })
if (secret !== undefined) {
  // Options given once at registration: @fastify/jwt then builds one verifier and reuses it for every
  // `jwtVerify()` without options (options per call would build a verifier per call).
  await app.register(fastifyJwt, { secret, verify: { algorithms: ['HS256'], extractToken } })
}
await app.register(rateLimit, {
  global: false,
  max,
  timeWindow,
  keyGenerator: request => typeof request.user?.sub === 'string' ? `user:${request.user.sub}` : `ip:${request.ip}`
})
await app.register(websocket, { options: { maxPayload: MAX_PAYLOAD } })
if (withMetrics) {
  // As plugins/metrics.ts registers it when the host has none: histogram only, prom-client's buckets.
  const registry = new promClient.Registry()
  await app.register(fastifyMetrics, {
    endpoint: '/metrics',
    promClient,
    defaultMetrics: { enabled: true, register: registry },
    routeMetrics: {
      enabled: { histogram: true, summary: false },
      overrides: { histogram: { registers: [registry] }, summary: { registers: [] } }
    }
  })
}

async function verified (request) {
  await request.jwtVerify()
}

/**
 * The onRequest hooks of a route: a 401 (400 without a token) unless the token verifies. A new array
 * per route: @fastify/rate-limit pushes its hook onto the route's array, so a shared one would carry
 * the publish route's limiter into the upgrade.
 */
const authenticate = () => secret === undefined ? [] : [verified]
// The route-level onRequest hooks run before the ones @fastify/rate-limit appends: verified, then counted.
const limited = { rateLimit: { max, timeWindow } }

app.get('/health/live', async () => ({ ok: true }))

app.post('/api/publish', {
  bodyLimit: MAX_PAYLOAD,
  onRequest: authenticate(),
  config: limited,
  schema: {
    body: publishBody,
    response: { 200: { type: 'object', required: ['ok'], properties: { ok: { type: 'boolean' } } } }
  }
}, async () => ({ ok: true }))

app.get('/ws', { websocket: true, onRequest: authenticate(), config: limitUpgrades ? limited : {} }, (socket, request) => {
  const claims = request.user
  socket.send(JSON.stringify({ type: 'welcome', connectionId: randomUUID(), user: claims?.sub ?? null, node: 'same-stack', heartbeat: 0, expiresAt: typeof claims?.exp === 'number' ? claims.exp * 1000 : null }))
})

await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 3003) })
