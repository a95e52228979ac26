// The umbrella plugin users register into their app: the broker and node, auth, the websocket
// server, metrics, and the routes under an optional prefix. It composes them in the one order in
// which each gets its collaborators when it is built: the broker first (nothing connects yet), auth
// (revocations on the broker's control bus), the node (it verifies `refresh` frames with auth), then
// what serves the node: websockets, metrics, routes.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { realtimeErrorHandler } from '../src/http-errors.js'
import routes from '../routes/index.js'
import { configWith, refuseUnknownOptions, type Config } from '../src/config.js'
import type { Broker } from '../src/core/broker.js'
import type { RedisClientLike } from '../src/core/brokers/redis-client-like.js'
import auth, { type AuthOptions } from './auth.js'
import realtimeNode, { brokerFor, kRealtimeNode } from './node.js'
import connections from './connections.js'
import { hasLogSerializers, logSerializers, notFoundWithoutQuery, requestLoggerFactory } from './logging.js'
import metrics, { metricsEndpoint, type HttpMetricsRoutes } from './metrics.js'
import mqttBridge from './mqtt-bridge.js'
import outbox, { type OutboxPool } from './outbox.js'
import { startupSummary } from './startup-summary.js'

export interface RealtimeOptions extends Partial<Config> {
  /** Mounts every route (including /ws and /metrics) under this path, e.g. '/realtime'. */
  prefix?: string
  /** Use this broker instead of the one the config selects. */
  broker?: Broker
  /**
   * An ioredis client (Redis or Cluster) to run the Redis broker on instead of redisUrl /
   * redisClusterNodes, typically your app.redis from @fastify/redis: never closed by the plugin
   * (docs/scaling.md, "Handing over a Redis client").
   */
  redis?: RedisClientLike
  /** Your own verification of upgrades and HTTP calls instead of the JWT lookup (see docs/auth.md). */
  verify?: AuthOptions['verify']
  /** Your own verification of `refresh` tokens. */
  verifyToken?: AuthOptions['verifyToken']
  /**
   * Which routes `http_request_duration_seconds` times: 'realtime' (default) only this plugin's, so
   * your app's routes are left alone; 'all' every route of the app, yours included. No effect when
   * your app registered fastify-metrics before the plugin: yours times the routes then.
   */
  metricsRoutes?: HttpMetricsRoutes
  /** A pg.Pool to run the outbox consumer on instead of outboxUrl: never closed by the plugin (docs/outbox.md). */
  outboxPool?: OutboxPool
}

/** The plugin's options that are not Config fields (Fastify's own `logSerializers` included: it is a register option). */
const PLUGIN_OPTIONS = ['prefix', 'broker', 'redis', 'verify', 'verifyToken', 'metricsRoutes', 'logSerializers', 'outboxPool'] as const

async function realtime (app: FastifyInstance, options: RealtimeOptions): Promise<void> {
  // Before anything is built: a misspelled option stops the registration, naming the closest known one.
  refuseUnknownOptions(options, PLUGIN_OPTIONS)
  const { prefix, broker: customBroker, redis, verify, verifyToken, metricsRoutes = 'realtime', outboxPool, ...overrides } = options
  if (metricsRoutes !== 'realtime' && metricsRoutes !== 'all') {
    throw new Error(`fastify-realtime: metricsRoutes must be 'realtime' or 'all', got ${JSON.stringify(metricsRoutes)}`)
  }
  // fastify-plugin exposes the `realtime` decorator to the host, and therefore ignores `prefix` for
  // this function: it is applied to the routes' own context instead.
  const config = configWith(overrides)
  const broker = brokerFor(config, { broker: customBroker, redis })
  await app.register(auth, { config, verify, verifyToken, revocations: broker.controlBus })
  await app.register(realtimeNode, { config, broker, refreshIdentity: app.realtimeAuth.refresh })
  await app.register(connections, { config })
  await app.register(metrics, { config, httpRoutes: metricsRoutes })
  // The MQTT bridge (MQTT_URL): after the node and its metrics registry, before readiness reports it.
  if (config.mqttUrl !== undefined) await app.register(mqttBridge, { config })
  // The outbox consumer (OUTBOX_URL or outboxPool; docs/outbox.md): after the node and metrics, before readiness reports it.
  if (config.outboxUrl !== undefined || outboxPool !== undefined) await app.register(outbox, { config, pool: outboxPool })
  const node = app[kRealtimeNode]
  // The standalone server's logger has our serializers already (src/app.ts): its requests' loggers are
  // Fastify's plain children then, with no factory of ours to call and check on every request.
  const ownSerializers = !hasLogSerializers(app.log)
  await app.register(async function realtimeRoutes (scope) {
    // The API's error shape for every route here, GET /metrics and routes/ included: set once, here.
    scope.setErrorHandler(realtimeErrorHandler)
    // Every request's logger here carries logSerializers, also the 404 context's (which Fastify builds
    // without the scope's), and is made without copying them per request (plugins/logging.ts).
    if (ownSerializers) scope.setChildLoggerFactory(requestLoggerFactory(scope.childLoggerFactory))
    // Under a prefix of ours, unknown paths get a 404 that does not echo `?token=` (plugins/logging.ts);
    // without one the not-found handler is the host's (docs/operations.md, "Logs").
    if (prefix !== undefined && prefix !== '' && prefix !== '/') scope.setNotFoundHandler(notFoundWithoutQuery)
    await scope.register(metricsEndpoint, { config, httpRoutes: metricsRoutes })
    await scope.register(routes, { config, node })
  }, ownSerializers ? { prefix, logSerializers } : { prefix })

  app.addHook('onReady', async () => {
    // At ready: who verifies callers (a host's @fastify/jwt registered after us counts) is known then.
    const summary = startupSummary(config, { prefix, broker: customBroker, redis, metricsRoutes, auth: app.realtimeAuth.mode })
    app.log.info(summary, `realtime node ${node.id}: ${summary.broker} broker, auth ${summary.auth}, prefix ${summary.prefix}`)
  })
}

export default fp(realtime, { fastify: '5.x', name: 'fastify-realtime' })
