// GET /api/topics/:topic/history and /presence: a topic's retained publications and who is
// subscribed to it, both under the subscribe ACL. A history reply is paid from the caller's history
// budget before it is sent (src/core/history-budget.ts), like the websocket `history` frame: the same
// budget for a user on both, an anonymous caller's kept by IP.
import type { FastifyInstance } from 'fastify'
import { callerKey, LIMITED_ROUTE } from './rate-limit.js'
import type { HistoryResult } from '../src/core/broker.js'
import { historyReplyBytes, REFUSED } from '../src/core/history-budget.js'
import { canSubscribe, type Identity } from '../src/core/identity.js'
import { encodeWithMessages, ErrorCode } from '../src/core/protocol.js'
import { httpError } from '../src/http-errors.js'
import type { RouteOptions } from './index.js'
import { assertTopic, errorResponses, topicSchema } from './schemas.js'

interface HistoryQuerystring { since?: number, epoch?: string, limit?: number }

const topicParams = { type: 'object', required: ['topic'], properties: { topic: topicSchema } } as const

/** A stored `message` frame, as the websocket delivers it (docs/protocol.md §2). */
const messageSchema = {
  type: 'object',
  required: ['type', 'topic', 'epoch', 'offset', 'ts', 'data'],
  properties: {
    type: { type: 'string', enum: ['message'] },
    topic: { type: 'string' },
    epoch: { type: 'string' },
    offset: { type: 'integer' },
    ts: { type: 'integer', description: 'ms since the epoch, when the broker accepted it' },
    from: { type: 'string', description: 'the publishing user, when a websocket client published' },
    data: {}
  }
} as const

export default async function topicRoutes (app: FastifyInstance, options: RouteOptions): Promise<void> {
  const { node } = options
  const { historySize } = options.config

  /** The host's `onSubscribe` hooks on a read the ACL allowed (docs/hooks.md); their refusal is the reply. */
  async function allowedByHooks (identity: Identity, topic: string): Promise<void> {
    if (node.hooks.has('onSubscribe')) await node.hooks.runSubscribe({ identity, topic, connectionId: undefined })
  }

  app.get<{ Params: { topic: string }, Querystring: HistoryQuerystring }>('/api/topics/:topic/history', {
    config: LIMITED_ROUTE,
    schema: {
      summary: "A topic's retained publications",
      tags: ['topics'],
      params: topicParams,
      querystring: {
        type: 'object',
        properties: {
          // An offset past 2^53 cannot be one of ours, and Redis refuses it as a stream ID (a 500).
          since: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
          epoch: { type: 'string', minLength: 1 },
          limit: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER }
        },
        dependencies: { since: ['epoch'] }
      },
      // Documentation only: the handler sends the stored frames as they are (a string), unserialized.
      response: {
        200: {
          description: "the topic's position and its retained message frames, oldest first",
          type: 'object',
          required: ['topic', 'epoch', 'offset', 'messages'],
          properties: { topic: { type: 'string' }, epoch: { type: 'string' }, offset: { type: 'integer' }, messages: { type: 'array', items: messageSchema } }
        },
        ...errorResponses
      }
    }
  }, async (request, reply) => {
    const { topic } = request.params
    const { since, epoch, limit } = request.query
    assertTopic('params/topic', topic)
    const identity = await app.realtimeAuth.authenticate(request)
    if (!canSubscribe(identity, topic)) throw httpError(ErrorCode.forbidden, `not allowed to read the history of "${topic}"`)
    await allowedByHooks(identity, topic)
    const read = async (): Promise<HistoryResult | undefined> => {
      // Requests wait for the caller's earlier ones: a client gone meanwhile gets nothing read.
      if (request.raw.socket?.destroyed === true) return undefined
      return await node.history(topic, {
        since: since === undefined || epoch === undefined ? undefined : { epoch, offset: since },
        limit: Math.min(limit ?? historySize, historySize)
      })
    }
    // The caller's key in the rate limit: the user, else the client address; none for real admins.
    const key = callerKey(identity, request)
    const history = key === undefined ? await read() : await node.historyBudget.serve(key, read, historyReplyBytes)
    if (history === REFUSED) {
      node.stats.rateLimited.bytes++
      reply.header('retry-after', String(node.historyBudget.retryAfter(key as string)))
      throw httpError(ErrorCode.rateLimited, `history replies over ${node.historyBudget.rate} bytes per second for this caller: retry later`)
    }
    if (history === undefined) return reply.hijack()
    reply.type('application/json')
    return encodeWithMessages({ topic, epoch: history.epoch, offset: history.offset }, history.publications.map(p => p.frame))
  })

  app.get<{ Params: { topic: string } }>('/api/topics/:topic/presence', {
    config: LIMITED_ROUTE,
    schema: {
      summary: 'Who is subscribed to a topic (PRESENCE=true)',
      tags: ['topics'],
      params: topicParams,
      response: {
        200: {
          description: 'the subscribed connections, and the identified users among them',
          type: 'object',
          required: ['topic', 'connections', 'users'],
          properties: {
            topic: { type: 'string' },
            connections: { type: 'integer' },
            users: {
              type: 'array',
              items: { type: 'object', properties: { user: { type: 'string' }, connections: { type: 'integer' } } }
            }
          }
        },
        ...errorResponses
      }
    }
  }, async (request) => {
    const { topic } = request.params
    assertTopic('params/topic', topic)
    node.requirePresence()
    const identity = await app.realtimeAuth.authenticate(request)
    if (!canSubscribe(identity, topic)) throw httpError(ErrorCode.forbidden, `not allowed to read the presence of "${topic}"`)
    await allowedByHooks(identity, topic)
    return await node.presence(topic)
  })
}
