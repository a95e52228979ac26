// GET /sse: a server-sent events stream of one or more topics (docs/protocol.md, "Server-sent
// events"), for clients that cannot open a websocket (a proxy that breaks upgrades, a page that wants
// no library: the browser's own EventSource). The same admission as /ws, then every topic is checked
// and subscribed before the 200, so every refusal is a plain HTTP error; after that the stream is a
// connection like any other (src/core/sse-connection.ts): capped, revocable, drained, expiring.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { LIMITED_ROUTE } from './rate-limit.js'
import type { Admission } from '../src/core/admission.js'
import { armExpiry } from '../src/core/auth/expiry.js'
import { budgetKey } from '../src/core/dispatcher.js'
import { canSubscribe, OPEN_IDENTITY, type Identity } from '../src/core/identity.js'
import { CloseCode, ErrorCode, ProtocolError } from '../src/core/protocol.js'
import { decodeCursor, type CursorPosition } from '../src/core/sse-cursor.js'
import type { SseConnection } from '../src/core/sse-connection.js'
import { connectionAdmission, logsInfo } from './admission.js'
import { httpError, HttpError } from '../src/http-errors.js'
import type { RouteOptions } from './index.js'
import { assertTopic } from './schemas.js'

interface SseQuery {
  topic?: string | string[]
  lastEventId?: string
  token?: string
}

/** The request id of the subscribes a stream makes: they are answered by `subscribed` events, which carry none. */
const STREAM_SUBSCRIBE = 0

export default async function sseRoutes (app: FastifyInstance, options: RouteOptions): Promise<void> {
  const { config, node } = options
  const admit = connectionAdmission(app, options)

  /** The `topic` parameters, in order: 1 to MAX_SUBSCRIPTIONS valid topics, each once. */
  function topicsOf (query: SseQuery): string[] {
    const given = query.topic
    const topics = given === undefined ? [] : Array.isArray(given) ? given : [given]
    if (topics.length === 0) throw httpError(ErrorCode.badRequest, 'querystring/topic is required: one `topic` parameter per topic (?topic=a&topic=b)')
    if (topics.length > config.maxSubscriptions) {
      throw httpError(ErrorCode.badRequest, `querystring/topic: at most ${config.maxSubscriptions} topics per stream (MAX_SUBSCRIPTIONS)`)
    }
    topics.forEach((topic, i) => assertTopic(`querystring/topic/${i}`, topic))
    if (new Set(topics).size !== topics.length) throw httpError(ErrorCode.badRequest, 'querystring/topic: each topic at most once')
    return topics
  }

  /** Where each topic resumes: the Last-Event-ID header (EventSource sends it) or ?lastEventId=. */
  function positionsOf (request: FastifyRequest<{ Querystring: SseQuery }>, topics: readonly string[]): Array<CursorPosition | undefined> {
    const header = request.headers['last-event-id']
    const given: unknown = typeof header === 'string' && header !== '' ? header : request.query.lastEventId
    if (given === undefined || given === '') return topics.map(() => undefined)
    if (typeof given !== 'string') throw httpError(ErrorCode.badRequest, 'lastEventId: give it once')
    const cursor = given
    const positions = decodeCursor(cursor, topics.length)
    if (positions === undefined) {
      throw httpError(ErrorCode.badRequest, `lastEventId "${cursor.slice(0, 64)}" is not the id of an event of this stream's ${topics.length} topic(s)`)
    }
    return positions
  }

  /** The ACL, STRICT_TOPICS and the host's `onSubscribe` hooks, for every topic, before anything opens. */
  async function authorize (identity: Identity, topics: readonly string[], connectionId: string | undefined): Promise<void> {
    for (const topic of topics) {
      if (!canSubscribe(identity, topic)) throw httpError(ErrorCode.forbidden, `not allowed to subscribe to "${topic}"`)
      node.topicSchemas?.requireDeclared(topic)
    }
    if (node.hooks.has('onSubscribe')) {
      for (const topic of topics) await node.hooks.runSubscribe({ identity, topic, connectionId })
    }
  }

  /** A stream closed before it began (revoked, disconnected, drained): its cause as an HTTP error. */
  function closedBeforeStart (connection: SseConnection): HttpError {
    const reason = connection.closeReason ?? 'the stream ended before it began'
    if (connection.closeCode === CloseCode.forbidden) return httpError(ErrorCode.forbidden, reason)
    if (connection.closeCode === CloseCode.tokenExpired) return httpError(ErrorCode.unauthorized, reason)
    return httpError(ErrorCode.unavailable, reason)
  }

  app.get<{ Querystring: SseQuery }>('/sse', { onRequest: admit, config: LIMITED_ROUTE, schema: { hide: true } }, async (request, reply) => {
    const topics = topicsOf(request.query)
    const since = positionsOf(request, topics)
    const identity = request.realtimeIdentity ?? OPEN_IDENTITY
    await authorize(identity, topics, request.realtimeConnectionId ?? undefined)
    const admission = request.realtimeAdmission as Admission
    const remoteAddress = logsInfo(app.log) ? request.ip : undefined
    const connection = node.acceptStream(reply.raw, identity, topics, since, { remoteAddress, reqId: request.id, admission, connectionId: request.realtimeConnectionId ?? undefined })
    // In the same tick as Hub.add: from here on a control message finds the stream in the hub.
    admission.accepted()
    if (admission.refusal !== undefined) connection.close(admission.refusal)
    try {
      // Each replay is paid from the caller's history budget, as a websocket's subscribe with `since` is.
      const key = budgetKey(connection)
      await Promise.all(topics.map(async (topic, i) => await node.hub.subscribe(connection, STREAM_SUBSCRIBE, topic, since[i], key)))
      if (!connection.open) throw closedBeforeStart(connection)
    } catch (err) {
      node.hub.remove(connection)
      if (err instanceof ProtocolError && err.code === ErrorCode.rateLimited) {
        reply.header('retry-after', String(node.historyBudget.retryAfter(budgetKey(connection) as string)))
      }
      throw err
    }
    // From here the response is ours, not Fastify's: headers set by hooks so far (CORS, rate limit) go with it.
    reply.hijack()
    if (!connection.start(reply.getHeaders())) {
      // The client went away while its topics were being subscribed: nothing to answer, nothing to count.
      node.hub.remove(connection)
      return
    }
    node.log.info({ transport: 'sse', connectionId: connection.id, user: identity.user, topics: topics.length, remoteAddress, reqId: request.id }, 'event stream opened')
    // Ends the stream with 4001 at the token's expiry: no refresh over SSE (a client reopens with a new token).
    armExpiry(connection)
  })
}
