// An ioredis client handed to the Redis brokers (the plugin's `redis` option: typically a host's
// `app.redis` from @fastify/redis) is recognised by its shape, never with instanceof: the host's
// client may come from another copy, or another major, of ioredis than ours. Its type is written out
// here rather than imported for the same reason, and so that the package's typings never import
// ioredis (ioredis 6.1's declarations import `redis-errors`, which has none: TS7016 for a strict
// consumer).

/**
 * An ioredis client, `Redis` or `Cluster` (any ioredis major from 5 on), as the `redis` option takes
 * it. Only what tells one from another is listed; the brokers use the rest of ioredis' API on it.
 */
export interface RedisClientLike {
  /** ioredis' connection status: 'wait', 'connecting', 'ready', 'reconnecting', 'end'... */
  readonly status: string
  /** true on a Cluster client. */
  readonly isCluster?: boolean
  readonly options: object
  // Method signatures: they compare bivariantly, so that ioredis' overloads (one per event name) fit.
  duplicate (...args: never[]): unknown
  defineCommand (name: string, definition: { lua: string, numberOfKeys?: number }): unknown
  on (event: string, listener: (...args: unknown[]) => void): unknown
  off (event: string, listener: (...args: unknown[]) => void): unknown
  /** Used only with `true` (reconnect): a connection that stalls is dropped and reconnected. */
  disconnect (reconnect?: boolean): unknown
}

/** What a handed client's options hold that the brokers look at. */
interface ClientOptions {
  keyPrefix?: string
  commandTimeout?: number
  host?: string
  port?: number
  path?: string
  slotsRefreshInterval?: number
  /** A Cluster's options for each of its node connections. */
  redisOptions?: ClientOptions
}

const METHODS = ['duplicate', 'defineCommand', 'on', 'off', 'disconnect'] as const

/** true for an ioredis Cluster client, by its shape. */
export function isClusterClient (client: RedisClientLike): boolean {
  return client.isCluster === true && typeof (client as { nodes?: unknown }).nodes === 'function'
}

/**
 * `client` when it can carry a Redis broker; otherwise `refuse` says why: not an ioredis client, a
 * closed one (it never reconnects), or one with a keyPrefix (ioredis would prefix the keys a script
 * gets but not the key names it builds from REDIS_PREFIX: presence would break).
 */
export function checkRedisClient (client: unknown, refuse: (message: string) => never): RedisClientLike {
  const shape = client as Partial<Record<string, unknown>> | null
  const missing = typeof shape !== 'object' || shape === null || typeof shape.status !== 'string'
    ? 'status'
    : METHODS.find(method => typeof shape[method] !== 'function')
  if (missing !== undefined) {
    refuse(`must be an ioredis client (Redis or Cluster), such as @fastify/redis' app.redis; got ${describeValue(client)} (no ${missing})`)
  }
  const handed = client as RedisClientLike
  if (handed.status === 'end') refuse('is a closed client (status \'end\'): hand over one that is open or connecting')
  const prefix = optionsOf(handed).keyPrefix ?? optionsOf(handed).redisOptions?.keyPrefix
  if (prefix !== undefined && prefix !== '') {
    refuse(`has keyPrefix '${prefix}': give the prefix as redisPrefix (REDIS_PREFIX) instead, on a client without keyPrefix`)
  }
  return handed
}

/**
 * The commandTimeout of a handed client's commands (a Cluster's: its node connections'), undefined
 * when it has none: a stalled Redis then leaves a command unanswered for ever.
 */
export function commandTimeoutOf (client: RedisClientLike): number | undefined {
  const options = optionsOf(client)
  return isClusterClient(client) ? options.redisOptions?.commandTimeout : options.commandTimeout
}

/** A Cluster client's slotsRefreshInterval (undefined, or 0: it never rereads the slot map by itself). */
export function slotsRefreshIntervalOf (client: RedisClientLike): number | undefined {
  return optionsOf(client).slotsRefreshInterval
}

/** Where a handed client connects, for messages (host:port or a socket path; never credentials). */
export function clientAddress (client: RedisClientLike): string {
  const { host, port, path } = optionsOf(client)
  if (typeof path === 'string' && path !== '') return path
  return `${host ?? '127.0.0.1'}:${port ?? 6379}`
}

function optionsOf (client: RedisClientLike): ClientOptions {
  return (client.options ?? {}) as ClientOptions
}

function describeValue (value: unknown): string {
  if (value === null) return 'null'
  if (typeof value !== 'object') return typeof value
  return value.constructor?.name ?? 'an object'
}
