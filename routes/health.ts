// Liveness and readiness for load balancers and orchestrators.
import type { FastifyInstance } from 'fastify'

export default async function healthRoutes (app: FastifyInstance): Promise<void> {
  const node = app.realtime

  app.get('/health/live', async () => ({ status: 'ok' }))

  app.get('/health/ready', async (_request, reply) => {
    if (node.draining) return reply.code(503).send({ status: 'draining' })
    if (!node.broker.up) return reply.code(503).send({ status: 'broker unavailable' })
    return { status: 'ready' }
  })
}
