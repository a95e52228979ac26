// Admin API: which nodes serve, with what load.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { ErrorCode } from '../src/core/protocol.js'
import { httpError } from './errors.js'

export async function requireAdmin (app: FastifyInstance, request: FastifyRequest): Promise<void> {
  const identity = await app.realtimeAuth.authenticate(request)
  if (!identity.admin) throw httpError(ErrorCode.forbidden, 'admin only: use the API key or an admin token')
}

export default async function adminRoutes (app: FastifyInstance): Promise<void> {
  const node = app.realtime

  app.get('/api/info', async (request) => {
    await requireAdmin(app, request)
    return { node: node.id, nodes: await node.broker.nodes() }
  })
}
