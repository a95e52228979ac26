// Builds this node around the broker (in-memory, or Redis when REDIS_URL is set), starts it, and
// decorates the instance with `realtime`: the small RealtimeApi that host routes publish through. The
// node itself is kept under a symbol, for the realtime plugins that need its insides (connections,
// metrics); the routes get it from the umbrella plugin in their options.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../src/config.js'
import { createRealtimeApi, type RealtimeApi } from '../src/core/api.js'
import type { Broker } from '../src/core/broker.js'
import { MemoryBroker } from '../src/core/brokers/memory.js'
import { RedisBroker } from '../src/core/brokers/redis.js'
import { RedisClusterBroker } from '../src/core/brokers/redis-cluster.js'
import type { Identity } from '../src/core/identity.js'
import { RealtimeNode } from '../src/core/node.js'

/** The decorator holding the RealtimeNode: internal, not exported by the package. */
export const kRealtimeNode = Symbol('fastify-realtime.node')

declare module 'fastify' {
  interface FastifyInstance {
    /** publish, broadcast, history, presence, disconnect, revoke, info (see RealtimeApi). */
    realtime: RealtimeApi
    /** The node behind `realtime`, for the realtime plugins only. */
    [kRealtimeNode]: RealtimeNode
  }
}

export interface BroadcastOptions {
  config: Config
  /** A broker of your own (tests, other backends); by default chosen from the config (createBroker). */
  broker?: Broker
  /**
   * Verifies the token of a websocket `refresh` frame: the auth plugin's `realtimeAuth.refresh`, which
   * is why the umbrella registers auth first. Without it, refresh is refused.
   */
  refreshIdentity?: (token: string) => Promise<Identity>
}

/**
 * The broker the config selects. The Redis broker owns its two ioredis connections (commands, and a
 * dedicated subscriber) rather than taking them from @fastify/redis: it must run outside Fastify too
 * (the core has no Fastify imports), it must not claim the host's `redis` decorator, and it configures
 * both connections to fail fast during outages (see src/core/brokers/redis-client.ts). Nothing
 * connects before start(); node.close() closes them.
 */
export function createBroker (config: Config): Broker {
  const { historySize, historyTtl, historyMemoryLimit } = config
  // REDIS_CLUSTER_NODES replaces REDIS_URL: the same broker on a Redis Cluster (docs/scaling.md).
  if (config.redisClusterNodes !== undefined) {
    // The entries as written: a URL entry carries the credentials and TLS of every connection.
    return new RedisClusterBroker({ nodes: config.redisClusterNodes, prefix: config.redisPrefix, nodeId: config.nodeId, historySize, historyTtl })
  }
  if (config.redisUrl === undefined) return new MemoryBroker({ historySize, historyTtl, historyMemoryLimit })
  return new RedisBroker({ url: config.redisUrl, prefix: config.redisPrefix, nodeId: config.nodeId, historySize, historyTtl })
}

async function broadcast (app: FastifyInstance, options: BroadcastOptions): Promise<void> {
  const { config, refreshIdentity } = options
  const broker = options.broker ?? createBroker(config)
  const node = new RealtimeNode({ config, broker, log: app.log, refreshIdentity })
  // Redis out of reach is an outage, not a failure to start: the node serves (readiness 503,
  // publishes 503) and is ready once Redis answers. A Redis that refuses us rejects here instead.
  await node.start()
  if (!broker.up) {
    const reason = broker instanceof RedisBroker || broker instanceof RedisClusterBroker ? broker.unreachableReason : undefined
    app.log.warn({ broker: 'down', reason }, 'the broker is unreachable at start: /health/ready answers 503 and publishes fail until it connects')
  }
  app.decorate('realtime', createRealtimeApi(node))
  app.decorate(kRealtimeNode, node)
  app.addHook('onClose', async () => { await node.close() })
}

export default fp(broadcast, { fastify: '5.x', name: 'fastify-realtime-broadcast' })
