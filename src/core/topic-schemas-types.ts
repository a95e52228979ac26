// Types only (no runtime code): declared topics as the compiler sees them, shared by the server's
// typed publish handle (topic-schemas-typed.ts) and the client library (client/client.ts). A topic map
// is a plain type, pattern -> payload type, e.g. `{ 'orders.{id}': { id: string, total: number } }`:
// write it by hand, or derive it from TypeBox declarations with `TopicTypes` of
// 'fastify-realtime/typebox'. Nothing here depends on TypeBox.

/** Pattern -> the type of the `data` published to topics matching it. */
export type TopicMap = Record<string, unknown>

type SegmentOf<S extends string> = S extends '*' | '>' | `{${string}}` ? string : S

/**
 * The topic names a declared pattern matches, as a template literal type: `orders.{id}` is
 * `orders.${string}`. `{name}`, `*` and `>` stand for any text (the compiler cannot count dots).
 */
export type TopicOfPattern<P extends string> = P extends `${infer Head}.${infer Rest}`
  ? `${SegmentOf<Head>}.${TopicOfPattern<Rest>}`
  : SegmentOf<P>

/** Every topic name the map declares. */
export type TopicName<M extends TopicMap> = { [P in keyof M & string]: TopicOfPattern<P> }[keyof M & string]

type MatchingPayloads<M extends TopicMap, T extends string> = { [P in keyof M & string]: T extends TopicOfPattern<P> ? M[P] : never }[keyof M & string]

/**
 * The type of the data of topic `T`: the pattern spelled exactly like `T` when there is one, else the
 * payloads of every pattern `T` matches (a union when several overlap; the server applies the most
 * specific one), else `unknown` (an undeclared topic, or a topic only known as `string`).
 */
export type TopicPayload<M extends TopicMap, T extends string> = T extends keyof M
  ? M[T]
  : [MatchingPayloads<M, T>] extends [never] ? unknown : MatchingPayloads<M, T>
