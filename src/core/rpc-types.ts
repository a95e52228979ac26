// Types only (no runtime code): RPC methods as the compiler sees them, shared by the server's typed
// registration ('fastify-realtime/typebox', typedRpc) and the client library (client.rpc). A method map
// is a plain type, name -> { params, result }, e.g. `{ 'orders.create': { params: { sku: string },
// result: { id: string } } }`: write it by hand, or derive it from TypeBox declarations with `RpcTypes`.

/** Method name -> the type of its `data` (params) and of its result. */
export type RpcMap = Record<string, { params: unknown, result: unknown }>

/** The `data` method `K` takes: its declared params, or unknown for a method the map does not name. */
export type RpcParams<M extends RpcMap, K extends string> = K extends keyof M ? M[K]['params'] : unknown

/** What method `K` resolves with: its declared result, or unknown for a method the map does not name. */
export type RpcResult<M extends RpcMap, K extends string> = K extends keyof M ? M[K]['result'] : unknown
