// Liveness and readiness for load balancers and orchestrators.
import type { FastifyInstance } from 'fastify'
import type { RouteOptions } from './index.js'

export default async function healthRoutes (app: FastifyInstance, options: RouteOptions): Promise<void> {
  const { node } = options
  // Probes must never be refused by the HTTP rate limit.
  const probe = { config: { rateLimit: false } } as const

  app.get('/health/live', probe, async () => ({ status: 'ok' }))

  app.get('/health/ready', probe, async (_request, reply) => {
    if (node.draining) return reply.code(503).send({ status: 'draining' })
    if (!node.broker.up) return reply.code(503).send({ status: 'broker unavailable' })
    return { status: 'ready' }
  })
}
