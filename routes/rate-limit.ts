// HTTP rate limit (RATE_LIMIT_MAX per RATE_LIMIT_WINDOW ms) on @fastify/rate-limit, and the inbound
// byte budget (USER_INBOUND_RATE) for the realtime routes. Keyed by the caller (the token's `sub`,
// else the client IP), counted in Redis when the broker is Redis so that every node shares the budget.
// Websocket upgrades count against the same budget (stat scope `connect`); real admins are exempt.
// Registered inside the routes' context: a host's own routes are not limited by it.
//
// Both run in onRequest, before the body is read: a caller over the limit is refused without making
// the server wait for (and hold a socket through) a body it will not take. They run after a route's
// own onRequest checks (@fastify/rate-limit appends to the route's hooks), so a refused upgrade is
// refused for its real reason (MAX_CONNECTIONS, the token) and an admin route's credentials come first.
//
// A host's own @fastify/rate-limit (its default `global: true`) does not apply to the routes limited
// here, in either registration order: each caller is counted once, by RATE_LIMIT_MAX, and only our
// x-ratelimit-* headers are written (docs/protocol.md §4, "Rate limit"). How, given that every
// registration of the plugin reads the same `config.rateLimit` of a route:
// - our routes are declared with LIMITED_ROUTE: `rateLimit: false`, which a host's registration reads
//   when it runs first (its onRoute hook is inherited, and runs before any hook of ours);
// - in this context, a hook of ours then clears that `false` before our own registration's onRoute
//   hook reads it, so ours puts its global limit on the route.
// A host's registration made after ours never sees our routes (they exist already). A limiter a host
// adds as a hook of its own (`app.addHook('onRequest', app.rateLimit(...))`) does run on them: its
// 429 leaves in the API's error shape, with code rate_limited (src/http-errors.ts).
import rateLimit, { normalizeIP } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import type { Cluster, Redis } from 'ioredis'
import { HttpError } from '../src/http-errors.js'
import type { Config } from '../src/config.js'
import { OPEN_IDENTITY, type Identity } from '../src/core/identity.js'
import type { RealtimeNode } from '../src/core/node.js'
import { ErrorCode } from '../src/core/protocol.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set by LIMITED_ROUTE: the route is under RATE_LIMIT_MAX and the byte budget, and no one else's limit. */
    realtimeRateLimit?: true
  }
}

/**
 * The `config` of a route under RATE_LIMIT_MAX and USER_INBOUND_RATE, and under no host-wide limiter.
 * A route under no limit at all, ours or a host's (probes, metrics, documents), has `rateLimit: false`
 * alone; one with neither is under ours, and under a host's global limit registered before us.
 */
export const LIMITED_ROUTE = Object.freeze({ rateLimit: false, realtimeRateLimit: true } as const)

export interface RateLimitOptions {
  config: Config
  /** Its Redis connection holds the counters (Redis broker), its stats count the refusals. */
  node: RealtimeNode
}

/** Callers the in-memory counters hold at most (an LRU): ~15 MB. */
export const MAX_MEMORY_WINDOWS = 100_000

/**
 * The key of real admins, on the limiter's allow list. Never a caller's key (those are `user:…` or
 * `ip:…`), so the allow list needs no second identity lookup.
 */
const EXEMPT = 'admin'

/**
 * The Redis connection that holds the counters: the broker's command connection (one Redis or a
 * Cluster: @fastify/rate-limit's script has one key, so it runs on the key's shard), or none for
 * other brokers (the counters are then this node's, in memory).
 */
export function counterRedis (node: RealtimeNode): Redis | Cluster | undefined {
  // An ioredis client: the broker types it by its shape (broker.ts), so that our declarations need no ioredis.
  return node.broker.sharedRedis as Redis | Cluster | undefined
}

/** `ip:<address>`, an IPv6 /64 being one caller as in @fastify/rate-limit's own key. */
function ipKey (request: FastifyRequest): string {
  // Fastify's inject() of an upgrade (injectWS) has no socket, so no address: one shared key.
  const ip = request.ip as string | undefined
  return ip === undefined ? 'ip:unknown' : `ip:${normalizeIP(ip)}`
}

/**
 * Whose HTTP budgets a request counts against (this limiter, the inbound bytes, history replies):
 * `user:<sub>`, else `ip:<address>`; undefined for real admins, who are exempt. Open mode makes
 * everybody "admin": only real admins (API key, admin token) are exempt.
 */
export function callerKey (caller: Identity, request: FastifyRequest): string | undefined {
  if (caller.admin && caller !== OPEN_IDENTITY) return undefined
  return caller.user !== null ? `user:${caller.user}` : ipKey(request)
}

async function httpRateLimit (app: FastifyInstance, options: RateLimitOptions): Promise<void> {
  const { config, node } = options
  const auth = app.realtimeAuth

  /** `user:<sub>`, else `ip:<address>`, or EXEMPT. Bad credentials count against the IP. */
  function keyOf (request: FastifyRequest): Promise<string> {
    // The auth plugin keeps one identity promise per request: the route's own lookup reuses it.
    return auth.authenticate(request).then(caller => callerKey(caller, request) ?? EXEMPT, () => ipKey(request))
  }

  // Before our registration's own onRoute hook (hooks run in the order they are added): see the top.
  app.addHook('onRoute', route => {
    // The declared config is shared with the route's HEAD twin, which needs it unchanged: copied.
    if (route.config?.realtimeRateLimit === true) route.config = Object.assign({}, route.config, { rateLimit: undefined })
  })

  const redis = counterRedis(node)
  await app.register(rateLimit, {
    max: config.rateLimitMax,
    timeWindow: config.rateLimitWindow,
    // Before the body (see the top); appended after the route's own onRequest checks.
    hook: 'onRequest',
    redis,
    nameSpace: `${config.redisPrefix}ratelimit:`,
    cache: MAX_MEMORY_WINDOWS,
    // Redis failing: publishes already answer 503 on their own; the limiter lets requests through
    // rather than turning every request into a 500.
    skipOnError: true,
    keyGenerator: keyOf,
    // Redis not connected: not counted either (no headers). A client handed over may queue commands
    // while it reconnects, which would hold every request until Redis is back.
    allowList: redis === undefined ? [EXEMPT] : (_request, key) => key === EXEMPT || redis.status !== 'ready',
    onExceeded: request => { node.stats.rateLimited[request.ws ? 'connect' : 'http']++ },
    // Thrown, so it leaves as {statusCode, code, error, message} like every other error.
    errorResponseBuilder: (_request, context) => new HttpError(context.statusCode, ErrorCode.rateLimited,
      `rate limit exceeded: at most ${context.max} requests per window; retry in ${context.after}`)
  })

  /** USER_INBOUND_RATE: a request body counts against its caller's bytes, shared with their frames on this node. */
  const budget: onRequestHookHandler = function inboundBudget (request, _reply, done) {
    // Counted from the declared content-length, before the body is read: a body over the budget is
    // never received. No content-length (NaN) or 0: nothing to count, no identity to look up.
    const bytes = Number(request.headers['content-length'])
    if (!(bytes > 0)) return done()
    keyOf(request).then(key => {
      if (key === EXEMPT || node.inbound.admit(key, bytes) === 'accepted') return done()
      node.stats.rateLimited.bytes++
      done(new HttpError(429, ErrorCode.rateLimited, `inbound byte rate exceeded: at most ${node.inbound.rate} bytes per second per caller`))
    }, done)
  }

  // After our registration's onRoute hook: the budget runs once the request is inside the window.
  app.addHook('onRoute', route => {
    if (route.config?.rateLimit === false) return
    const own = route.onRequest
    route.onRequest = own === undefined ? [budget] : Array.isArray(own) ? own.concat(budget) : [own, budget]
  })
}

export default fp(httpRateLimit, { fastify: '5.x', name: 'fastify-realtime-rate-limit', dependencies: ['fastify-realtime-auth'] })
