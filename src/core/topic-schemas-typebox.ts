// 'fastify-realtime/typebox': declared topics and RPC methods written with TypeBox, typed from their
// schemas. Only this
// entry point refers to TypeBox (types only: `import type`), so the package itself needs none; import
// it when your app has `typebox` installed.
import type { Static, TSchema } from 'typebox'
import type { RealtimeApi } from './api.js'
import type { RpcContext } from './rpc.js'
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

/** An RPC method's declaration: the TypeBox schema of its `data` and, for typed clients, of its result. */
export interface RpcDeclaration {
  schema?: TSchema
  result?: TSchema
  description?: string
}

type StaticOr<S> = S extends TSchema ? Static<S> : unknown

/** TypeBox RPC declarations -> method map (rpc-types.ts): `new RealtimeClient<Topics, RpcTypes<typeof methods>>(url)`. */
export type RpcTypes<D> = {
  [K in keyof D & string]: { params: StaticOr<D[K] extends { schema: infer S } ? S : undefined>, result: StaticOr<D[K] extends { result: infer R } ? R : undefined> }
}

/** typedRpc's registration: the handler's `ctx.data` and result are the declaration's types. */
export interface TypedRpc<D extends Record<string, RpcDeclaration>> {
  rpc: <K extends keyof D & string>(name: K, handler: (ctx: RpcContext & { data: RpcTypes<D>[K]['params'] }) => RpcTypes<D>[K]['result'] | Promise<RpcTypes<D>[K]['result']>) => void
}

/**
 * RPC methods declared once with TypeBox, for the server and the client alike:
 * `typedRpc(app.realtime, methods).rpc('orders.create', async ctx => ...)` registers the method with
 * its declaration's schema (so `data` is checked) and types its handler; clients take `RpcTypes<typeof methods>`.
 */
export function typedRpc<const D extends Record<string, RpcDeclaration>> (api: RealtimeApi<any>, methods: D): TypedRpc<D> {
  return Object.freeze({
    rpc: (name: string, handler: (ctx: RpcContext) => unknown) => api.rpc(name, { ...methods[name] }, handler)
  }) as TypedRpc<D>
}

export type { TopicDeclaration, TopicDeclarations } from './topic-schemas.js'
export type { RpcMap, RpcParams, RpcResult } from './rpc-types.js'
export type { TopicHandle, TypedRealtime } from './topic-schemas-typed.js'
export type { TopicMap, TopicName, TopicOfPattern, TopicPayload } from './topic-schemas-types.js'
