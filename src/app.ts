// buildApp(config): a standalone Fastify instance serving the realtime plugin.
import Fastify, { type FastifyInstance } from 'fastify'
import { logSerializers } from '../plugins/logging.js'
import realtime from '../plugins/realtime.js'
import type { Config } from './config.js'

/** Fastify takes a hop count at run time but its types do not: the same rule as a function. */
function trustProxyOption (trust: Config['trustProxy']): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof trust === 'number') return (_address, hop) => hop < trust
  return trust ?? false
}

export async function buildApp (config: Config): Promise<FastifyInstance> {
  const app = Fastify({
    // Fastify's default sheds every request with a bare 503 while closing. Ours answer for themselves
    // during the drain: /health/live stays 200 while the process runs (docs/protocol.md §4), /health/ready and
    // new upgrades get 503 with a reason, and in-flight and new publishes still complete.
    return503OnClosing: false,
    // Behind a reverse proxy, the client's address comes from X-Forwarded-For, but only from the proxies
    // named here (docs/operations.md); otherwise every caller would share the proxy's rate-limit budget.
    trustProxy: trustProxyOption(config.trustProxy),
    logger: {
      level: config.logLevel,
      redact: ['req.headers.authorization', 'req.headers["x-api-key"]'],
      serializers: logSerializers
    }
  })
  await app.register(realtime, config)
  return app
}
