// The umbrella plugin users register into their app: the broker and node, auth, the websocket
// server, and the routes under an optional prefix.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { configWith, type Config } from '../src/config.js'
import type { Broker } from '../src/core/broker.js'
import routes from '../routes/index.js'
import auth from './auth.js'
import broadcast from './broadcast.js'
import connections from './connections.js'
import metrics from './metrics.js'

export interface RealtimeOptions extends Partial<Config> {
  /** Mounts every route (including /ws) under this path, e.g. '/realtime'. */
  prefix?: string
  /** Use this broker instead of the one the config selects. */
  broker?: Broker
}

async function realtime (app: FastifyInstance, options: RealtimeOptions): Promise<void> {
  const { prefix, broker, ...overrides } = options
  // fastify-plugin exposes the `realtime` decorator to the host, and therefore ignores `prefix` for
  // this function: it is applied to the routes' own context instead.
  const config = configWith(overrides)
  await app.register(broadcast, { config, broker })
  await app.register(auth, { config })
  await app.register(connections, { config })
  await app.register(metrics, { prefix })
  await app.register(routes, { config, prefix })
}

export default fp(realtime, { fastify: '5.x', name: 'fastify-realtime' })
