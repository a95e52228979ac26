// Builds this node around the broker (in-memory, or Redis: from REDIS_URL / REDIS_CLUSTER_NODES, or
// on an ioredis client handed over as `redis`), starts it, and decorates the instance with `realtime`:
// the small RealtimeApi that host routes publish through. The node itself is kept under a symbol, for
// the realtime plugins that need its insides (connections, metrics); the routes get it from the
// umbrella plugin in their options.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../src/config.js'
import { createRealtimeApi, type RealtimeApi } from '../src/core/api.js'
import type { Broker } from '../src/core/broker.js'
import { brokerFor } from '../src/core/brokers/create.js'
import type { RedisClientLike } from '../src/core/brokers/redis-client-like.js'
import { letQuitEnd } from '../src/core/brokers/redis-client.js'
import type { Identity } from '../src/core/identity.js'
import { RealtimeNode } from '../src/core/node.js'
import redisConnection, { type RedisConnectionOptions } from './redis-connection.js'

export { brokerFor, createBroker } from '../src/core/brokers/create.js'

/** The decorator holding the RealtimeNode: internal, not exported by the package. */
export const kRealtimeNode = Symbol('fastify-realtime.node')

declare module 'fastify' {
  interface FastifyInstance {
    /** publish, broadcast, history, presence, disconnect, revoke, info, addHook, rpc (see RealtimeApi). */
    // Spelled as an import type: an imported name used only inside this augmentation is left out of
    // the emitted .d.ts, which then fails in a host's strict type check.
    realtime: RealtimeApi<import('fastify').FastifyRequest>
    /** The node behind `realtime`, for the realtime plugins only. */
    [kRealtimeNode]: RealtimeNode
  }
}

export interface RealtimeNodeOptions {
  config: Config
  /** A broker of your own (tests, other backends); by default chosen from the config (createBroker). */
  broker?: Broker
  /** An ioredis client (Redis or Cluster) for the Redis broker, never closed by the plugin (createBroker). */
  redis?: RedisClientLike
  /**
   * Verifies the token of a websocket `refresh` frame: the auth plugin's `realtimeAuth.refresh`, which
   * is why the umbrella registers auth first. Without it, refresh is refused.
   */
  refreshIdentity?: (token: string) => Promise<Identity>
}

async function realtimeNode (app: FastifyInstance, options: RealtimeNodeOptions): Promise<void> {
  const { config, refreshIdentity } = options
  const broker = brokerFor(config, options)
  const node = new RealtimeNode({ config, broker, log: app.log, refreshIdentity })
  // Redis out of reach is an outage, not a failure to start: the node serves (readiness 503,
  // publishes 503) and is ready once Redis answers. A Redis that refuses us rejects here instead.
  await node.start()
  if (!broker.up) {
    app.log.warn({ broker: 'down', reason: broker.unreachableReason }, 'the broker is unreachable at start: /health/ready answers 503 and publishes fail until it connects')
  }
  // The broker's own command connection goes to @fastify/redis, which closes it: only once it is
  // ready, since @fastify/redis would hold the start until it is (plugins/redis-connection.ts). A
  // connection still down here stays the broker's, which closes it in node.close().
  // An ioredis client (the broker types it by its shape: broker.ts).
  const released = broker.releaseCommands?.() as RedisConnectionOptions['client'] | undefined
  if (released !== undefined) await app.register(redisConnection, { client: released })
  app.decorate('realtime', createRealtimeApi<FastifyRequest>(node))
  app.decorate(kRealtimeNode, node)
  // Hooks and RPC methods are added before the app is ready, as Fastify's own are.
  app.addHook('onReady', async () => {
    node.hooks.seal()
    node.rpcMethods.seal()
  })
  // Added after @fastify/redis's: onClose hooks run last-added first, so the node leaves the registry
  // (commands on that connection) before @fastify/redis quits it.
  app.addHook('onClose', async () => {
    await node.close()
    if (released !== undefined) letQuitEnd(released)
  })
}

export default fp(realtimeNode, { fastify: '5.x', name: 'fastify-realtime-node' })
