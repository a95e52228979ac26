// The typed way to publish to declared topics: a handle whose `publish` only compiles with data of
// the declared type. The map of types is a type parameter (topic-schemas-types.ts): at run time the
// handle is app.realtime itself, and the server still checks every publication against its schema.
import type { OutboxOptions, OutboxRow } from '../outbox/insert.js'
import type { Queryable } from '../outbox/pg-like.js'
import type { PublishOptions, RealtimeApi } from './api.js'
import type { PublishResult } from './node.js'
import { ErrorCode, ProtocolError } from './protocol.js'
import type { TopicMap, TopicName, TopicPayload } from './topic-schemas-types.js'
import { isValidTopic } from './topics.js'

/** One topic, its data type fixed: `handle.publish(data)`. */
export interface TopicHandle<Data> {
  readonly topic: string
  publish: (data: Data, options?: PublishOptions) => Promise<PublishResult>
  /** app.realtime.outbox for this topic: a row in your transaction, published once it commits. */
  outbox: (client: Queryable, data: Data, options?: OutboxOptions) => Promise<OutboxRow>
}

/** app.realtime's publish, typed by a topic map: a topic must match a declared pattern, its data the pattern's type. */
export interface TypedRealtime<M extends TopicMap> {
  publish: <T extends TopicName<M>>(topic: T, data: TopicPayload<M, T>, options?: PublishOptions) => Promise<PublishResult>
  /** app.realtime.outbox, typed the same way: a row in your transaction (docs/outbox.md). */
  outbox: <T extends TopicName<M>>(client: Queryable, topic: T, data: TopicPayload<M, T>, options?: OutboxOptions) => Promise<OutboxRow>
  /** A handle on one topic; throws `bad_request` for an invalid topic name. */
  topic: <T extends TopicName<M>>(topic: T) => TopicHandle<TopicPayload<M, T>>
}

/**
 * `typedRealtime<{ 'orders.{id}': Order }>(app.realtime)`: the same calls, checked by the compiler.
 * With TypeBox declarations, `typedTopics(app.realtime, topics)` of 'fastify-realtime/typebox' derives the map.
 */
export function typedRealtime<M extends TopicMap> (api: RealtimeApi): TypedRealtime<M> {
  return Object.freeze({
    publish: async (topic: string, data: unknown, options?: PublishOptions) => await api.publish(topic, data, options),
    outbox: async (client: Queryable, topic: string, data: unknown, options?: OutboxOptions) => await api.outbox(client, topic, data, options),
    topic: (topic: string) => {
      if (typeof topic !== 'string' || !isValidTopic(topic)) throw new ProtocolError(ErrorCode.badRequest, `invalid topic "${String(topic).slice(0, 300)}"`)
      return Object.freeze({
        topic,
        publish: async (data: unknown, options?: PublishOptions) => await api.publish(topic, data, options),
        outbox: async (client: Queryable, data: unknown, options?: OutboxOptions) => await api.outbox(client, topic, data, options)
      })
    }
  }) as TypedRealtime<M>
}
