// GET /api/topics (admin): this node's busiest topics, for the admin page and for operators asking
// "is anyone on orders.* here, and how hot is it?". What the node knows of its own topics, from the
// hub's index (src/core/busiest-topics.ts): never a scan of Redis. Each node answers for itself: its
// subscribers; the publication rate of a topic is the same on every node that has subscribers to it.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { requireAdmin } from './admin.js'
import { LIMITED_ROUTE } from './rate-limit.js'
import { busiestTopics } from '../src/core/busiest-topics.js'
import { RATE_WINDOW_MS } from '../src/core/local-topic.js'
import { ErrorCode } from '../src/core/protocol.js'
import { isValidPattern, MAX_TOPIC_LENGTH } from '../src/core/topics.js'
import { httpError } from '../src/http-errors.js'
import type { RouteOptions } from './index.js'
import { errorResponses } from './schemas.js'

export const DEFAULT_TOPICS_LIMIT = 20
export const MAX_TOPICS_LIMIT = 100

interface TopicsQuery { pattern?: string, limit?: number }

const topicsQuery = {
  type: 'object',
  properties: {
    pattern: { type: 'string', minLength: 1, maxLength: MAX_TOPIC_LENGTH, description: 'a topic or an ACL pattern: `*` one segment, `>` (last) the rest, e.g. `orders.*`; default: every topic' },
    limit: { type: 'integer', minimum: 1, maximum: MAX_TOPICS_LIMIT, default: DEFAULT_TOPICS_LIMIT, description: 'at most this many topics, the busiest' }
  }
} as const

const topicItem = {
  type: 'object',
  required: ['topic', 'subscribers', 'publications', 'rate'],
  properties: {
    topic: { type: 'string' },
    subscribers: { type: 'integer', description: 'subscriptions on this node' },
    epoch: { type: 'string', description: "the topic's epoch, when this node has seen its position" },
    offset: { type: 'integer', description: 'its top offset, as this node last saw it' },
    publications: { type: 'integer', description: 'publications this node received since the topic got its first subscriber here' },
    rate: { type: 'number', description: `publications per second over the last ${RATE_WINDOW_MS / 1000} seconds` }
  }
} as const

export default async function adminTopicRoutes (app: FastifyInstance, options: RouteOptions): Promise<void> {
  const { node } = options
  const adminOnly = async (request: FastifyRequest): Promise<void> => { await requireAdmin(app, request) }

  app.get<{ Querystring: TopicsQuery }>('/api/topics', {
    // Before the query is validated: only admins learn what a valid query looks like.
    onRequest: adminOnly,
    config: LIMITED_ROUTE,
    schema: {
      summary: "This node's busiest topics with their subscribers, position and publications per second (admin)",
      tags: ['admin'],
      querystring: topicsQuery,
      response: {
        200: {
          description: 'the topics of this node that match, busiest first (publications per second, then subscribers)',
          type: 'object',
          required: ['node', 'matched', 'topics'],
          properties: {
            node: { type: 'string', description: 'the node that answered: the figures are its own' },
            matched: { type: 'integer', description: "how many of this node's topics match the pattern, listed or not" },
            topics: { type: 'array', items: topicItem }
          }
        },
        ...errorResponses
      }
    }
  }, async (request) => {
    const { pattern, limit = DEFAULT_TOPICS_LIMIT } = request.query
    // `{sub}` stands for a token's subject in the ACLs; here there is none, so it could match nothing.
    if (pattern !== undefined && (!isValidPattern(pattern) || pattern.includes('{'))) {
      throw httpError(ErrorCode.badRequest, `querystring/pattern "${pattern}" is not a topic pattern: dot-separated segments of [A-Za-z0-9_-:@], \`*\` for one segment, \`>\` last for the rest`)
    }
    const { matched, topics } = busiestTopics(node.hub.localTopics(), pattern, limit)
    return {
      node: node.id,
      matched,
      topics: topics.map(({ topic, subscribers, position, publications, rate }) => ({
        topic, subscribers, publications, rate: Math.round(rate * 100) / 100, ...position
      }))
    }
  })
}
