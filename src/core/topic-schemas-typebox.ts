// 'fastify-realtime/typebox': declared topics written with TypeBox, typed from their schemas. Only this
// entry point refers to TypeBox (types only: `import type`), so the package itself needs none; import
// it when your app has `typebox` installed.
import type { Static, TSchema } from 'typebox'
import type { RealtimeApi } from './api.js'
import type { TopicDeclaration } from './topic-schemas.js'
import { typedRealtime, type TypedRealtime } from './topic-schemas-typed.js'

/** TypeBox declarations -> topic map: each pattern's payload is its schema's Static type (no schema: unknown). */
export type TopicTypes<D> = {
  [P in keyof D & string]: D[P] extends { schema: infer S extends TSchema } ? Static<S> : unknown
}

/**
 * The handle of typedRealtime, its types derived from the very declarations given to the plugin:
 * `const rt = typedTopics(app.realtime, topics)`, then `rt.publish('orders.42', order)`.
 */
export function typedTopics<const D extends Record<string, TopicDeclaration>> (api: RealtimeApi, _topics: D): TypedRealtime<TopicTypes<D>> {
  return typedRealtime<TopicTypes<D>>(api)
}

export type { TopicDeclaration, TopicDeclarations } from './topic-schemas.js'
export type { TopicHandle, TypedRealtime } from './topic-schemas-typed.js'
export type { TopicMap, TopicName, TopicOfPattern, TopicPayload } from './topic-schemas-types.js'
