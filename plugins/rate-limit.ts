// HTTP rate limit (RATE_LIMIT_MAX per RATE_LIMIT_WINDOW ms) and inbound byte budget (USER_INBOUND_RATE)
// for the realtime routes: keyed by the caller (the token's `sub`, else the client IP), counted in
// Redis when the broker is Redis so that every node shares the budget (src/core/http-rate-limit.ts).
// Websocket upgrades count against the same budget (scope `connect`); admin callers are exempt.
// Registered inside the routes' context, so a host's own routes are not limited by it.
//
// One callback-style preHandler per request does it all (caller, window, headers, byte budget): the
// @fastify/rate-limit plugin it replaces, with a second async hook for the budget, cost ~3-4 µs of a
// ~37 µs HTTP publish (performance issue 13).
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, preHandlerHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { HttpError } from '../routes/errors.js'
import type { Config } from '../src/config.js'
import { RedisBrokerBase } from '../src/core/brokers/redis-base.js'
import { MemoryWindowStore, RedisWindowStore, retryIn, type WindowCount, type WindowStore } from '../src/core/http-rate-limit.js'
import { OPEN_IDENTITY, type Identity } from '../src/core/identity.js'
import type { RealtimeNode } from '../src/core/node.js'
import { ErrorCode } from '../src/core/protocol.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `false`: the route is under neither the HTTP rate limit nor the byte budget (probes, documents). */
    rateLimit?: false
  }
}

export interface RateLimitOptions {
  config: Config
  /** Its Redis connection holds the counters (Redis broker), its stats count the refusals. */
  node: RealtimeNode
}

const LIMIT = 'x-ratelimit-limit'
const REMAINING = 'x-ratelimit-remaining'
const RESET = 'x-ratelimit-reset'
const RETRY_AFTER = 'retry-after'

async function httpRateLimit (app: FastifyInstance, options: RateLimitOptions): Promise<void> {
  const { config, node } = options
  const max = config.rateLimitMax
  // One Redis or a Cluster client: the script has one key, so it runs on a Cluster as well.
  const store: WindowStore = node.broker instanceof RedisBrokerBase
    ? new RedisWindowStore(node.broker.commands, `${config.redisPrefix}ratelimit:`, config.rateLimitWindow)
    : new MemoryWindowStore(config.rateLimitWindow)
  app.addHook('onClose', (_app, done) => {
    store.close()
    done()
  })
  const auth = app.realtimeAuth

  /** The caller's window on every counted response: the limit, what is left, seconds until it ends. */
  function windowHeaders (reply: FastifyReply, remaining: number, seconds: number): void {
    reply.header(LIMIT, max)
    reply.header(REMAINING, remaining)
    reply.header(RESET, seconds)
  }

  /** Over RATE_LIMIT_MAX: the headers, and a 429 that leaves as {statusCode, code, error, message}. */
  function refuse (reply: FastifyReply, done: HookHandlerDoneFunction, seconds: number, scope: 'http' | 'connect'): void {
    node.stats.rateLimited[scope]++
    windowHeaders(reply, 0, seconds)
    reply.header(RETRY_AFTER, seconds)
    done(new HttpError(429, ErrorCode.rateLimited, `rate limit exceeded: at most ${max} requests per window; retry in ${retryIn(seconds)}`))
  }

  /** USER_INBOUND_RATE: a request body counts against its caller's bytes, shared with their frames on this node. */
  function budget (request: FastifyRequest, done: HookHandlerDoneFunction, key: string): void {
    // No content-length (NaN) or 0: nothing to count.
    const bytes = Number(request.headers['content-length'])
    if (!(bytes > 0) || node.inbound.admit(key, bytes) === 'accepted') return done()
    node.stats.rateLimited.bytes++
    done(new HttpError(429, ErrorCode.rateLimited, `inbound byte rate exceeded: at most ${node.inbound.rate} bytes per second per caller`))
  }

  function counted (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction, key: string, window: WindowCount, now: number, scope: 'http' | 'connect'): void {
    const seconds = Math.ceil((window.resetAt - now) / 1000)
    if (window.count > max) return refuse(reply, done, seconds, scope)
    // An accepted upgrade's 101 is written by ws, not through the reply: headers set here would go
    // nowhere (three reply.header calls per connect for nothing). A refused one's 429 carries them.
    if (scope === 'http') windowHeaders(reply, max - window.count, seconds)
    budget(request, done, key)
  }

  /** `caller` null: bad credentials, counted by IP (the route answers 401 itself). */
  function check (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction, caller: Identity | null, scope: 'http' | 'connect'): void {
    // Open mode makes everybody "admin"; only real admins (API key, admin token) are exempt.
    if (caller !== null && caller !== OPEN_IDENTITY && caller.admin) return done()
    const key = caller?.user != null ? `user:${caller.user}` : `ip:${request.ip}`
    const now = Date.now()
    const window = store.hit(key, now)
    if (!(window instanceof Promise)) return counted(request, reply, done, key, window, now, scope)
    window.then(
      result => { counted(request, reply, done, key, result, now, scope) },
      // Redis down: publishes already answer 503; the limit is skipped (no headers) rather than a 500.
      () => { budget(request, done, key) }
    )
  }

  /** The hook of every limited route; `scope` says which stat a refusal counts in. */
  function limiter (scope: 'http' | 'connect'): preHandlerHookHandler {
    return function rateLimit (request, reply, done) {
      // The auth plugin keeps one identity promise per request: the route's own lookup reuses it.
      auth.authenticate(request).then(
        caller => { check(request, reply, done, caller, scope) },
        () => { check(request, reply, done, null, scope) }
      )
    }
  }
  const limitHttp = limiter('http')
  const limitUpgrade = limiter('connect')

  // Resolved once per route, so that no request reads its routeOptions. A preHandler: after the
  // route's own onRequest checks, so a refused upgrade is refused for its real reason.
  app.addHook('onRoute', route => {
    if (route.config?.rateLimit === false) return
    const hook = route.websocket === true ? limitUpgrade : limitHttp
    const own = route.preHandler
    route.preHandler = own === undefined ? [hook] : Array.isArray(own) ? own.concat(hook) : [own, hook]
  })
}

export default fp(httpRateLimit, { fastify: '5.x', name: 'fastify-realtime-rate-limit', dependencies: ['fastify-realtime-auth'] })
