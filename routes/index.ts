// All of the realtime routes, in one encapsulated context: plugins/realtime.ts gives it its prefix and
// the API's error handler (src/http-errors.ts).
import type { FastifyInstance } from 'fastify'
import httpRateLimit from './rate-limit.js'
import type { Config } from '../src/config.js'
import type { RealtimeNode } from '../src/core/node.js'
import adminRoutes from './admin.js'
import adminPageRoutes from './admin-page.js'
import adminTopicRoutes from './admin-topics.js'
import asyncapiRoutes from './asyncapi.js'
import clientRoutes from './client.js'
import healthRoutes from './health.js'
import { registerOpenapi } from './openapi.js'
import publishRoutes from './publish.js'
import topicRoutes from './topics.js'
import rpcRoutes from './rpc.js'
import sseRoutes from './sse.js'
import wsRoutes from './ws.js'

/** What every route plugin gets: the config, and the node it serves (the umbrella plugin hands it over). */
export interface RouteOptions {
  config: Config
  node: RealtimeNode
}

export default async function routes (app: FastifyInstance, options: RouteOptions): Promise<void> {
  // The API takes JSON only: without Fastify's default text/plain parser, any other body is a 415
  // that says so (src/http-errors.ts), instead of a string the validator refuses as "must be object".
  app.removeContentTypeParser('text/plain')
  // Only these two go down: passing our own `prefix` on would apply it a second time (/rt/rt/ws).
  const children: RouteOptions = { config: options.config, node: options.node }
  // Scoped to these routes: a host's own routes are not limited by our RATE_LIMIT_MAX.
  await app.register(httpRateLimit, children)
  // Before the routes: it documents the routes registered after it in this context (GET /openapi.json).
  await registerOpenapi(app, options.config)
  await app.register(wsRoutes, children)
  await app.register(sseRoutes, children)
  await app.register(publishRoutes, children)
  await app.register(rpcRoutes, children)
  await app.register(topicRoutes, children)
  await app.register(adminRoutes, children)
  await app.register(adminTopicRoutes, children)
  await app.register(healthRoutes, children)
  await app.register(clientRoutes, children)
  await app.register(adminPageRoutes, children)
  await app.register(asyncapiRoutes, children)
}
