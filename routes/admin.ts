// Admin API: which nodes serve, with what load; revoking tokens and disconnecting users on every node.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { MIN_EXPIRES_AT_MS, revocationUntil } from '../src/core/auth/revocation.js'
import { ErrorCode } from '../src/core/protocol.js'
import { httpError } from './errors.js'

export async function requireAdmin (app: FastifyInstance, request: FastifyRequest): Promise<void> {
  const identity = await app.realtimeAuth.authenticate(request)
  if (!identity.admin) throw httpError(ErrorCode.forbidden, 'admin only: use the API key or an admin token')
}

interface RevokeBody { jti: string, expiresAt?: number }
interface DisconnectBody { user: string }

export default async function adminRoutes (app: FastifyInstance): Promise<void> {
  const node = app.realtime
  // Checked on request, before the body is validated: only admins learn what a valid body looks like.
  const adminOnly = async (request: FastifyRequest): Promise<void> => { await requireAdmin(app, request) }

  // The token is refused from now on (the broker shares the list with every node), and the connections
  // that run on it close with 4003. Revoke first, so that a client reconnecting at once is refused.
  app.post<{ Body: RevokeBody }>('/api/revoke', {
    onRequest: adminOnly,
    schema: {
      body: {
        type: 'object',
        required: ['jti'],
        properties: { jti: { type: 'string', minLength: 1, maxLength: 1024 }, expiresAt: { type: 'integer', minimum: 0 } }
      }
    }
  }, async (request) => {
    const { jti, expiresAt } = request.body
    if (expiresAt !== undefined && expiresAt < MIN_EXPIRES_AT_MS) {
      throw httpError(ErrorCode.badRequest, 'body/expiresAt is milliseconds since the epoch; this looks like seconds (a JWT exp): multiply by 1000')
    }
    await node.broker.revoke(jti, revocationUntil(expiresAt))
    await node.broker.sendControl({ type: 'revoke', jti })
    return {}
  })

  app.post<{ Body: DisconnectBody }>('/api/disconnect', {
    onRequest: adminOnly,
    schema: {
      body: { type: 'object', required: ['user'], properties: { user: { type: 'string', minLength: 1, maxLength: 1024 } } }
    }
  }, async (request) => {
    await node.broker.sendControl({ type: 'disconnect', user: request.body.user })
    return {}
  })

  app.get('/api/info', async (request) => {
    await requireAdmin(app, request)
    return { node: node.id, nodes: await node.broker.nodes() }
  })
}
