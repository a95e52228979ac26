// POST /api/publish and POST /api/broadcast: backends push to topics with plain HTTP.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { LIMITED_ROUTE } from './rate-limit.js'
import { canPublish, type Identity } from '../src/core/identity.js'
import { ErrorCode, nestedDeeperThan, tooDeepMessage } from '../src/core/protocol.js'
import { httpError } from '../src/http-errors.js'
import type { RouteOptions } from './index.js'
import { assertTopic, errorResponses, positionSchema, strictBody, topicSchema } from './schemas.js'

interface PublishBody { topic: string, data: unknown, idempotencyKey?: string }
interface BroadcastBody { topics: string[], data: unknown }

const MAX_BROADCAST_TOPICS = 100

const publishBody = {
  type: 'object',
  required: ['topic', 'data'],
  properties: {
    topic: topicSchema,
    data: { description: 'any JSON value, delivered as sent' },
    idempotencyKey: { type: 'string', minLength: 1, maxLength: 256, description: 'the same key on the same topic within 5 minutes answers the first result and publishes nothing' }
  },
  additionalProperties: false
} as const

const broadcastBody = {
  type: 'object',
  required: ['topics', 'data'],
  properties: {
    topics: { type: 'array', minItems: 1, maxItems: MAX_BROADCAST_TOPICS, uniqueItems: true, items: topicSchema },
    data: { description: 'any JSON value, delivered as sent to every topic' }
  },
  additionalProperties: false
} as const

/** A 400 naming body/data when it nests deeper than MAX_DATA_DEPTH (it could not be serialized). */
function assertShallow (data: unknown): void {
  if (nestedDeeperThan(data)) throw httpError(ErrorCode.badRequest, tooDeepMessage('body/data'))
}

export default async function publishRoutes (app: FastifyInstance, options: RouteOptions): Promise<void> {
  const { node } = options
  // The body limit, named in the 413 (src/http-errors.ts); RATE_LIMIT_MAX (routes/rate-limit.ts).
  // The credentials are checked before the body is read (preParsing: after the rate limit and byte
  // budget of onRequest, which count bad credentials against the IP): a caller without valid ones gets
  // its 401 at once, and its socket is not held while a body it may not send trickles in. The handler's
  // own authenticate() reuses the same identity.
  const authenticated = async (request: FastifyRequest): Promise<void> => { await app.realtimeAuth.authenticate(request) }
  const limits = { bodyLimit: options.config.maxPayload, preParsing: authenticated, config: { ...LIMITED_ROUTE, bodyLimitSetting: 'MAX_PAYLOAD' } }

  /** A 403 unless `identity` may publish to `topic`. */
  function assertCanPublish (identity: Identity, topic: string): void {
    if (!canPublish(identity, topic)) throw httpError(ErrorCode.forbidden, `not allowed to publish to "${topic}"`)
  }

  app.post<{ Body: PublishBody }>('/api/publish', {
    ...limits,
    ...strictBody(publishBody),
    schema: {
      summary: 'Publish to a topic',
      tags: ['publish'],
      body: publishBody,
      response: { 200: { ...positionSchema, description: "the publication's position in the topic's stream" }, ...errorResponses }
    }
  }, async (request) => {
    const { topic, data, idempotencyKey } = request.body
    assertTopic('body/topic', topic)
    assertShallow(data)
    const identity = await app.realtimeAuth.authenticate(request)
    assertCanPublish(identity, topic)
    return node.publish(topic, data, { source: 'http', idempotencyKey, dataPath: 'body/data', identity })
  })

  app.post<{ Body: BroadcastBody }>('/api/broadcast', {
    ...limits,
    ...strictBody(broadcastBody),
    schema: {
      summary: 'Publish the same data to several topics',
      tags: ['publish'],
      body: broadcastBody,
      response: {
        200: { description: 'one position per topic, in order', type: 'object', required: ['results'], properties: { results: { type: 'array', items: positionSchema } } },
        ...errorResponses
      }
    }
  }, async (request) => {
    const { topics, data } = request.body
    topics.forEach((topic, i) => assertTopic(`body/topics/${i}`, topic))
    assertShallow(data)
    const identity = await app.realtimeAuth.authenticate(request)
    for (const topic of topics) assertCanPublish(identity, topic)
    return { results: await node.broadcast(topics, data, { source: 'http', dataPath: 'body/data', identity }) }
  })
}
