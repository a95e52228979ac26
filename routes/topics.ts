// GET /api/topics/:topic/history and /presence: a topic's retained publications and who is
// subscribed to it, both under the subscribe ACL.
import type { FastifyInstance } from 'fastify'
import type { Config } from '../src/config.js'
import { canSubscribe } from '../src/core/identity.js'
import { encodeWithMessages, ErrorCode } from '../src/core/protocol.js'
import { httpError } from './errors.js'
import { assertTopic, topicSchema } from './schemas.js'

interface HistoryQuerystring { since?: number, epoch?: string, limit?: number }

export default async function topicRoutes (app: FastifyInstance, options: { config: Config }): Promise<void> {
  const node = app.realtime
  const { historySize } = options.config

  app.get<{ Params: { topic: string }, Querystring: HistoryQuerystring }>('/api/topics/:topic/history', {
    schema: {
      params: { type: 'object', properties: { topic: topicSchema } },
      querystring: {
        type: 'object',
        properties: {
          since: { type: 'integer', minimum: 0 },
          epoch: { type: 'string', minLength: 1 },
          limit: { type: 'integer', minimum: 0 }
        },
        dependencies: { since: ['epoch'] }
      }
    }
  }, async (request, reply) => {
    const { topic } = request.params
    const { since, epoch, limit } = request.query
    assertTopic('params/topic', topic)
    const identity = await app.realtimeAuth.authenticate(request)
    if (!canSubscribe(identity, topic)) throw httpError(ErrorCode.forbidden, `not allowed to read the history of "${topic}"`)
    const history = await node.history(topic, {
      since: since === undefined || epoch === undefined ? undefined : { epoch, offset: since },
      limit: Math.min(limit ?? historySize, historySize)
    })
    reply.type('application/json')
    return encodeWithMessages({ topic, epoch: history.epoch, offset: history.offset }, history.publications.map(p => p.frame))
  })

  app.get<{ Params: { topic: string } }>('/api/topics/:topic/presence', {
    schema: {
      params: { type: 'object', properties: { topic: topicSchema } },
      response: {
        200: {
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
        }
      }
    }
  }, async (request) => {
    const { topic } = request.params
    assertTopic('params/topic', topic)
    node.requirePresence()
    const identity = await app.realtimeAuth.authenticate(request)
    if (!canSubscribe(identity, topic)) throw httpError(ErrorCode.forbidden, `not allowed to read the presence of "${topic}"`)
    return node.presence(topic)
  })
}
