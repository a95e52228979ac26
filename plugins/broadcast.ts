// Picks the broker (in-memory, or Redis when REDIS_URL is set), builds this node around it, and
// decorates the instance with `realtime` so host routes can publish.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../src/config.js'
import type { Broker } from '../src/core/broker.js'
import { MemoryBroker } from '../src/core/brokers/memory.js'
import { RedisBroker } from '../src/core/brokers/redis.js'
import { RealtimeNode } from '../src/core/node.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** This node: `publish(topic, data)`, `history(topic, query)`, the hub and the stats. */
    realtime: RealtimeNode
  }
}

export interface BroadcastOptions {
  config: Config
  /** A broker of your own (tests, other backends); by default chosen from the config. */
  broker?: Broker
}

/**
 * The Redis broker owns its two ioredis connections (commands, and a dedicated subscriber) rather
 * than taking them from @fastify/redis: it must run outside Fastify too (the core has no Fastify
 * imports), it must not claim the host's `redis` decorator, and it configures both connections to
 * fail fast during outages (see src/core/brokers/redis-client.ts). node.close() closes them.
 */
function createBroker (config: Config): Broker {
  const { historySize, historyTtl } = config
  if (config.redisUrl === undefined) return new MemoryBroker({ historySize, historyTtl })
  return new RedisBroker({ url: config.redisUrl, prefix: config.redisPrefix, nodeId: config.nodeId, historySize, historyTtl })
}

async function broadcast (app: FastifyInstance, options: BroadcastOptions): Promise<void> {
  const broker = options.broker ?? createBroker(options.config)
  const node = new RealtimeNode(options.config, broker, app.log)
  // Redis out of reach is an outage, not a failure to start: the node serves (readiness 503,
  // publishes 503) and is ready once Redis answers. A Redis that refuses us rejects here instead.
  await node.start()
  if (!broker.up) {
    const reason = broker instanceof RedisBroker ? broker.unreachableReason : undefined
    app.log.warn({ broker: 'down', reason }, 'the broker is unreachable at start: /health/ready answers 503 and publishes fail until it connects')
  }
  app.decorate('realtime', node)
  app.addHook('onClose', async () => { await node.close() })
}

export default fp(broadcast, { fastify: '5.x', name: 'fastify-realtime-broadcast' })
