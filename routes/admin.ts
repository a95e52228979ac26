// Admin API: which nodes serve, with what load (the broker's node registry); revoking tokens and
// disconnecting users on every node (its control bus). The node does the work; these check the caller
// and the body.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { LIMITED_ROUTE } from './rate-limit.js'
import { MIN_EXPIRES_AT_MS } from '../src/core/auth/revocation.js'
import { ErrorCode } from '../src/core/protocol.js'
import { httpError } from '../src/http-errors.js'
import type { RouteOptions } from './index.js'
import { emptySchema, errorResponses, strictBody } from './schemas.js'

export async function requireAdmin (app: FastifyInstance, request: FastifyRequest): Promise<void> {
  const identity = await app.realtimeAuth.authenticate(request)
  if (!identity.admin) throw httpError(ErrorCode.forbidden, 'admin only: use the API key or an admin token')
}

/** The latest moment a JavaScript Date can hold (and Redis's PXAT takes): a later `expiresAt` is a 400. */
export const MAX_EXPIRES_AT_MS = 8_640_000_000_000_000

interface RevokeBody { jti: string, expiresAt?: number }
interface DisconnectBody { user: string }

const revokeBody = {
  type: 'object',
  required: ['jti'],
  properties: {
    jti: { type: 'string', minLength: 1, maxLength: 1024, description: "the token's `jti` claim" },
    expiresAt: { type: 'integer', minimum: 0, maximum: MAX_EXPIRES_AT_MS, description: 'ms since the epoch until which the token is refused (its `exp` × 1000); default: 7 days' }
  },
  additionalProperties: false
} as const

const disconnectBody = {
  type: 'object',
  required: ['user'],
  properties: { user: { type: 'string', minLength: 1, maxLength: 1024, description: "the user's `sub`" } },
  additionalProperties: false
} as const

export default async function adminRoutes (app: FastifyInstance, options: RouteOptions): Promise<void> {
  const { node } = options
  // Checked on request, before the body is validated: only admins learn what a valid body looks like.
  const adminOnly = async (request: FastifyRequest): Promise<void> => { await requireAdmin(app, request) }

  // The token is refused from now on (the broker shares the list with every node), and the connections
  // that run on it close with 4003.
  app.post<{ Body: RevokeBody }>('/api/revoke', {
    onRequest: adminOnly,
    config: LIMITED_ROUTE,
    ...strictBody(revokeBody),
    schema: {
      summary: 'Revoke a token on every node (admin)',
      tags: ['admin'],
      body: revokeBody,
      response: { 200: { ...emptySchema, description: 'done on every node' }, ...errorResponses }
    }
  }, async (request) => {
    const { jti, expiresAt } = request.body
    if (expiresAt !== undefined && expiresAt < MIN_EXPIRES_AT_MS) {
      throw httpError(ErrorCode.badRequest, 'body/expiresAt is milliseconds since the epoch; this looks like seconds (a JWT exp): multiply by 1000')
    }
    await node.revoke(jti, { expiresAt })
    return {}
  })

  app.post<{ Body: DisconnectBody }>('/api/disconnect', {
    onRequest: adminOnly,
    config: LIMITED_ROUTE,
    ...strictBody(disconnectBody),
    schema: {
      summary: "Close a user's connections on every node (admin)",
      tags: ['admin'],
      body: disconnectBody,
      response: { 200: { ...emptySchema, description: 'done on every node' }, ...errorResponses }
    }
  }, async (request) => {
    await node.disconnect(request.body.user)
    return {}
  })

  app.get('/api/info', {
    config: LIMITED_ROUTE,
    schema: {
      summary: 'The nodes that serve, with their load (admin)',
      tags: ['admin'],
      response: {
        200: {
          description: 'this node and every live node',
          type: 'object',
          required: ['node', 'nodes'],
          properties: {
            node: { type: 'string', description: "this node's id" },
            nodes: {
              type: 'array',
              items: {
                type: 'object',
                required: ['id', 'connections', 'subscriptions', 'topics', 'startedAt'],
                properties: {
                  id: { type: 'string' },
                  connections: { type: 'integer' },
                  subscriptions: { type: 'integer' },
                  topics: { type: 'integer', description: 'topics with a subscriber on that node' },
                  startedAt: { type: 'integer', description: 'ms since the epoch' },
                  // Optional: a node of an older version, or a broker's own figures, may not give them.
                  memory: { type: 'integer', description: "resident set size of the node's process, bytes" },
                  deliveries: { type: 'integer', description: 'frames delivered to subscribers since the node started' },
                  brokerUp: { type: 'boolean', description: "whether the node's broker was reachable" },
                  sampledAt: { type: 'integer', description: 'when these figures were taken, ms since the epoch (another node announces them every few seconds)' }
                }
              }
            }
          }
        },
        ...errorResponses
      }
    }
  }, async (request) => {
    await requireAdmin(app, request)
    return await node.info()
  })
}
