// POST /api/publish and POST /api/broadcast: backends push to topics with plain HTTP.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Config } from '../src/config.js'
import { canPublish } from '../src/core/identity.js'
import { ErrorCode } from '../src/core/protocol.js'
import { httpError } from './errors.js'
import { assertTopic, exactBodyTypes, positionSchema, topicSchema } from './schemas.js'

interface PublishBody { topic: string, data: unknown, idempotencyKey?: string }
interface BroadcastBody { topics: string[], data: unknown }

const MAX_BROADCAST_TOPICS = 100

export default async function publishRoutes (app: FastifyInstance, options: { config: Config }): Promise<void> {
  const node = app.realtime
  const bodyLimit = options.config.maxPayload

  async function authorizePublish (request: FastifyRequest, topics: readonly string[]): Promise<void> {
    const identity = await app.realtimeAuth.authenticate(request)
    for (const topic of topics) {
      if (!canPublish(identity, topic)) throw httpError(ErrorCode.forbidden, `not allowed to publish to "${topic}"`)
    }
  }

  app.post<{ Body: PublishBody }>('/api/publish', {
    bodyLimit,
    preValidation: exactBodyTypes({ topic: 'string', idempotencyKey: 'string' }),
    schema: {
      body: {
        type: 'object',
        required: ['topic', 'data'],
        properties: { topic: topicSchema, data: {}, idempotencyKey: { type: 'string', minLength: 1, maxLength: 256 } }
      },
      response: { 200: positionSchema }
    }
  }, async (request) => {
    const { topic, data, idempotencyKey } = request.body
    assertTopic('body/topic', topic)
    await authorizePublish(request, [topic])
    return node.publish(topic, data, 'http', undefined, { idempotencyKey })
  })

  app.post<{ Body: BroadcastBody }>('/api/broadcast', {
    bodyLimit,
    preValidation: exactBodyTypes({ topics: 'string[]' }),
    schema: {
      body: {
        type: 'object',
        required: ['topics', 'data'],
        properties: {
          topics: { type: 'array', minItems: 1, maxItems: MAX_BROADCAST_TOPICS, uniqueItems: true, items: topicSchema },
          data: {}
        }
      },
      response: { 200: { type: 'object', properties: { results: { type: 'array', items: positionSchema } } } }
    }
  }, async (request) => {
    const { topics, data } = request.body
    topics.forEach((topic, i) => assertTopic(`body/topics/${i}`, topic))
    await authorizePublish(request, topics)
    const results = await Promise.all(topics.map(topic => node.publish(topic, data, 'http')))
    return { results }
  })
}
