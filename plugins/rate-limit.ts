// HTTP rate limit (RATE_LIMIT_MAX per RATE_LIMIT_WINDOW ms) for the realtime routes, on
// @fastify/rate-limit: keyed by the caller (the token's `sub`, else the client IP), counted in Redis
// when the broker is Redis so that every node shares the budget. Websocket upgrades count against the
// same budget (scope `connect`); admin callers are exempt. Registered inside the routes' context, so
// a host's own routes are not limited by it.
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../src/config.js'
import { RedisBrokerBase } from '../src/core/brokers/redis-base.js'
import { OPEN_IDENTITY, type Identity } from '../src/core/identity.js'
import type { RealtimeNode } from '../src/core/node.js'
import { ErrorCode } from '../src/core/protocol.js'

export interface RateLimitOptions {
  config: Config
  /** Its Redis connection holds the counters (Redis broker), its stats count the refusals. */
  node: RealtimeNode
}

async function httpRateLimit (app: FastifyInstance, options: RateLimitOptions): Promise<void> {
  const { config, node } = options

  /**
   * The verified caller, or null when its credentials are bad (the route answers 401 for those). Asked
   * three times per request (key, allow list, byte budget): the one promise is kept on the request.
   */
  const kCaller = Symbol('realtime.rateLimitCaller')
  app.decorateRequest(kCaller, null)
  const callerOf = (request: FastifyRequest): Promise<Identity | null> => {
    const slot = request as FastifyRequest & { [kCaller]: Promise<Identity | null> | null }
    slot[kCaller] ??= app.realtimeAuth.authenticate(request).catch(() => null)
    return slot[kCaller]
  }

  // One Redis or a Cluster client: the store's script has one key, so it runs on a Cluster as well.
  const redis = node.broker instanceof RedisBrokerBase ? node.broker.commands : undefined
  await app.register(rateLimit, {
    max: config.rateLimitMax,
    timeWindow: config.rateLimitWindow,
    // After the route's own onRequest checks, so a refused upgrade is refused for its real reason.
    hook: 'preHandler',
    redis,
    nameSpace: `${config.redisPrefix}ratelimit:`,
    // Redis down: publishes already answer 503; the limiter must not turn that into a 500.
    skipOnError: true,
    keyGenerator: async request => {
      const caller = await callerOf(request)
      return caller?.user != null ? `user:${caller.user}` : `ip:${request.ip}`
    },
    // Open mode makes everybody "admin"; only real admins (API key, admin token) are exempt.
    allowList: async request => {
      const caller = await callerOf(request)
      return caller !== null && caller !== OPEN_IDENTITY && caller.admin
    },
    onExceeded: request => {
      node.stats.rateLimited[request.routeOptions.url?.endsWith('/ws') === true ? 'connect' : 'http']++
    },
    // Thrown as an error, so it leaves as {statusCode, code, error, message} like every other error.
    errorResponseBuilder: (_request, context) => Object.assign(
      new Error(`rate limit exceeded: at most ${context.max} requests per window; retry in ${context.after}`),
      { statusCode: 429, code: ErrorCode.rateLimited }
    )
  })

  // USER_INBOUND_RATE: a request body counts against its caller's inbound bytes, shared with their
  // websocket frames on this node (src/core/inbound-budget.ts); admins are exempt, as above.
  app.addHook('preHandler', async request => {
    const bytes = Number(request.headers['content-length'] ?? 0)
    if (!(bytes > 0)) return
    const caller = await callerOf(request)
    if (caller !== null && caller !== OPEN_IDENTITY && caller.admin) return
    if (node.inbound.admit(caller?.user != null ? `user:${caller.user}` : `ip:${request.ip}`, bytes) === 'accepted') return
    node.stats.rateLimited.bytes++
    throw Object.assign(new Error(`inbound byte rate exceeded: at most ${node.inbound.rate} bytes per second per caller`),
      { statusCode: 429, code: ErrorCode.rateLimited })
  })
}

export default fp(httpRateLimit, { fastify: '5.x', name: 'fastify-realtime-rate-limit', dependencies: ['fastify-realtime-auth'] })
