// buildApp(config): a standalone Fastify instance serving the realtime plugin.
import Fastify, { type FastifyInstance } from 'fastify'
import realtime from '../plugins/realtime.js'
import type { Config } from './config.js'

/** Logs requests without credentials: the query string may carry `?token=`. */
const requestSerializer = (request: { method: string, url: string, id: string }): Record<string, unknown> => ({
  id: request.id,
  method: request.method,
  url: request.url.split('?')[0]
})

export async function buildApp (config: Config): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: config.logLevel,
      redact: ['req.headers.authorization', 'req.headers["x-api-key"]'],
      serializers: { req: requestSerializer }
    }
  })
  await app.register(realtime, config)
  return app
}
