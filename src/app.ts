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
    // Fastify's default sheds every request with a bare 503 while closing. Ours answer for themselves
    // during the drain: /health/live stays 200 while the process runs (PROTOCOL §4), /health/ready and
    // new upgrades get 503 with a reason, and in-flight and new publishes still complete.
    return503OnClosing: false,
    logger: {
      level: config.logLevel,
      redact: ['req.headers.authorization', 'req.headers["x-api-key"]'],
      serializers: { req: requestSerializer }
    }
  })
  await app.register(realtime, config)
  return app
}
