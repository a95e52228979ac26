// Picks the broker (in-memory, or Redis when REDIS_URL is set), builds this node around it, and
// decorates the instance with `realtime` so host routes can publish.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../src/config.js'
import type { Broker } from '../src/core/broker.js'
import { MemoryBroker } from '../src/core/brokers/memory.js'
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

function createBroker (config: Config): Broker {
  if (config.redisUrl !== undefined) throw new Error('REDIS_URL is set but this build has no Redis broker yet')
  return new MemoryBroker({ historySize: config.historySize, historyTtl: config.historyTtl })
}

async function broadcast (app: FastifyInstance, options: BroadcastOptions): Promise<void> {
  const broker = options.broker ?? createBroker(options.config)
  const node = new RealtimeNode(options.config, broker, app.log)
  await node.start()
  app.decorate('realtime', node)
  app.addHook('onClose', async () => { await node.close() })
}

export default fp(broadcast, { fastify: '5.x', name: 'fastify-realtime-broadcast' })
