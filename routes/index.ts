// All of the realtime routes, in one encapsulated context (its own prefix and error handler).
import type { FastifyInstance } from 'fastify'
import type { Config } from '../src/config.js'
import adminRoutes from './admin.js'
import { realtimeErrorHandler } from './errors.js'
import healthRoutes from './health.js'
import publishRoutes from './publish.js'
import topicRoutes from './topics.js'
import wsRoutes from './ws.js'

export default async function routes (app: FastifyInstance, options: { config: Config }): Promise<void> {
  app.setErrorHandler(realtimeErrorHandler)
  await app.register(wsRoutes, options)
  await app.register(publishRoutes, options)
  await app.register(topicRoutes, options)
  await app.register(adminRoutes, options)
  await app.register(healthRoutes, options)
}
