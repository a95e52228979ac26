// The umbrella plugin users register into their app: the broker and node, auth, the websocket
// server, and the routes under an optional prefix.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { configWith, type Config } from '../src/config.js'
import type { Broker } from '../src/core/broker.js'
import routes from '../routes/index.js'
import auth, { type AuthOptions } from './auth.js'
import broadcast from './broadcast.js'
import connections from './connections.js'
import metrics from './metrics.js'

export interface RealtimeOptions extends Partial<Config> {
  /** Mounts every route (including /ws) under this path, e.g. '/realtime'. */
  prefix?: string
  /** Use this broker instead of the one the config selects. */
  broker?: Broker
  /** Your own verification of upgrades and HTTP calls instead of the JWT lookup (see docs/auth.md). */
  verify?: AuthOptions['verify']
  /** Your own verification of `refresh` tokens. */
  verifyToken?: AuthOptions['verifyToken']
}

async function realtime (app: FastifyInstance, options: RealtimeOptions): Promise<void> {
  const { prefix, broker, verify, verifyToken, ...overrides } = options
  // fastify-plugin exposes the `realtime` decorator to the host, and therefore ignores `prefix` for
  // this function: it is applied to the routes' own context instead.
  const config = configWith(overrides)
  await app.register(broadcast, { config, broker })
  await app.register(auth, { config, verify, verifyToken })
  await app.register(connections, { config })
  await app.register(metrics, { prefix })
  await app.register(routes, { config, prefix })
}

export default fp(realtime, { fastify: '5.x', name: 'fastify-realtime' })
