// POST /api/rpc: the host's RPC methods (app.realtime.rpc, docs/hooks.md) over plain HTTP, for clients
// without a websocket (the client library's SSE fallback) and for backends. The same methods, data
// checks and refusals as the websocket's `rpc` frame; the refusal's code gives the HTTP status.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { LIMITED_ROUTE } from './rate-limit.js'
import { ErrorCode, nestedDeeperThan, tooDeepMessage } from '../src/core/protocol.js'
import { httpError } from '../src/http-errors.js'
import type { RouteOptions } from './index.js'
import { errorResponses, strictBody } from './schemas.js'

interface RpcBody { method: string, data?: unknown }

const rpcBody = {
  type: 'object',
  required: ['method'],
  properties: {
    method: { type: 'string', minLength: 1, maxLength: 128, description: 'a method the app registered (app.realtime.rpc)' },
    data: { description: "any JSON value, checked against the method's schema; absent: null" }
  },
  additionalProperties: false
} as const

export default async function rpcRoutes (app: FastifyInstance, options: RouteOptions): Promise<void> {
  const { node } = options
  // As for publishing: credentials before the body is read, a body of at most MAX_PAYLOAD bytes.
  const authenticated = async (request: FastifyRequest): Promise<void> => { await app.realtimeAuth.authenticate(request) }
  app.post<{ Body: RpcBody }>('/api/rpc', {
    bodyLimit: options.config.maxPayload,
    preParsing: authenticated,
    config: { ...LIMITED_ROUTE, bodyLimitSetting: 'MAX_PAYLOAD' },
    ...strictBody(rpcBody),
    schema: {
      summary: 'Call an RPC method of the app',
      tags: ['rpc'],
      body: rpcBody,
      response: {
        200: { description: "the method's result", type: 'object', required: ['data'], properties: { data: {} } },
        ...errorResponses
      }
    }
  }, async (request) => {
    const { method, data = null } = request.body
    if (nestedDeeperThan(data)) throw httpError(ErrorCode.badRequest, tooDeepMessage('body/data'))
    const identity = await app.realtimeAuth.authenticate(request)
    return { data: await node.rpcMethods.call(method, { identity, data, connectionId: undefined }) }
  })
}
