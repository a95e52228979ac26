// The settings both Redis brokers share, in a file of their own that imports nothing from ioredis: the
// package's public declarations (src/redis-brokers.ts) use them without reaching ioredis' typings.

/** The options of both Redis brokers, apart from where Redis is. */
export interface RedisBrokerSettings {
  /** Prefix of every key and channel (REDIS_PREFIX). */
  prefix: string
  nodeId: string
  historySize: number
  /** Seconds a topic's stream (offsets and history) outlives its last publication. */
  historyTtl: number
  /** Milliseconds between two heartbeats of this node. Default 1000. */
  heartbeatInterval?: number
  /** Milliseconds a node stays listed (and its presence counted) after its last heartbeat. Default 5000. */
  nodeTtl?: number
  /**
   * Milliseconds between two reads of the control log, which apply the control messages pub/sub lost
   * (redis-control-log.ts). Default 5000: the documented heal bound (docs/protocol.md §3) rests on it.
   */
  controlReconcileInterval?: number
  /** Milliseconds start() waits for Redis before failing. Default 5000. */
  connectTimeout?: number
}
