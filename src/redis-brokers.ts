// The Redis brokers as the package exports them. Their classes (src/core/brokers/) type their
// connections with ioredis, and ioredis' declarations import packages that have none of their own
// (ioredis 6.1: `redis-errors`): exported as they are, they would make every consumer that compiles
// with `skipLibCheck: false` fail with TS7016 on our typings, whether it uses Redis or not. So the
// package's declarations describe them here, with nothing from ioredis, and test/package.test.ts
// checks that no declaration file the package's entry points reach imports it.
//
// The options below repeat those of the classes; test-d/brokers.tst.ts fails when they drift apart.
import type { Broker, ControlBus, NodeRegistry, PresenceStore } from './core/broker.js'
import type { RedisClientLike } from './core/brokers/redis-client-like.js'
import type { ClusterNodeAddress } from './core/brokers/redis-cluster-slots.js'
import type { RedisBrokerSettings } from './core/brokers/redis-settings.js'
import { RedisClusterBroker as RedisClusterBrokerClass } from './core/brokers/redis-cluster.js'
import { RedisBroker as RedisBrokerClass } from './core/brokers/redis.js'

export type { RedisClientLike, ClusterNodeAddress, RedisBrokerSettings }

export interface RedisBrokerOptions extends RedisBrokerSettings {
  /** redis:// or rediss:// URL (REDIS_URL): the broker opens its two connections, and closes them. */
  url?: string
  /**
   * Instead of `url`: an ioredis client (not a Cluster: RedisClusterBroker) to run the commands on,
   * typically a host's app.redis. The broker never closes it; its subscriber connection is
   * `client.duplicate()` with the broker's own options, which it closes.
   */
  client?: RedisClientLike
}

export interface RedisClusterBrokerOptions extends RedisBrokerSettings {
  /**
   * Seed nodes: the client learns the others from them. REDIS_CLUSTER_NODES entries (`host:port`, or
   * `redis[s]://[[username]:password@]host:port`) also carry the credentials and TLS of every connection.
   */
  nodes?: Array<ClusterNodeAddress | string>
  /**
   * Instead of `nodes`: an ioredis Cluster client to run the commands on, typically a host's
   * app.redis. Never closed by the broker; the shard subscribers use its `redisOptions` (login, TLS).
   */
  client?: RedisClientLike
}

/** A broker on Redis: every part of the broker seam (docs/architecture.md). */
export interface RedisBroker extends Broker, PresenceStore, ControlBus, NodeRegistry {
  readonly presenceStore: PresenceStore
  readonly controlBus: ControlBus
  readonly nodeRegistry: NodeRegistry
  /** The command connection (an ioredis client). Other plugins may use it; never close it. */
  readonly commands: RedisClientLike
  /** Where Redis was looked for and why it was last out of reach, for the start-up log. */
  readonly unreachableReason: string
}

/** A broker on a Redis Cluster (docs/scaling.md): RedisBroker's sibling, with sharded pub/sub. */
export interface RedisClusterBroker extends RedisBroker {
  /** The shards (master "host:port") whose subscriber connection is down: their topics answer 503. */
  readonly unavailableShards: string[]
}

export interface RedisBrokerConstructor {
  new (options: RedisBrokerOptions): RedisBroker
  readonly prototype: RedisBroker
}

export interface RedisClusterBrokerConstructor {
  new (options: RedisClusterBrokerOptions): RedisClusterBroker
  readonly prototype: RedisClusterBroker
}

/** A broker on one Redis (REDIS_URL, or a client handed over): `new RedisBroker(options)`. */
export const RedisBroker: RedisBrokerConstructor = RedisBrokerClass
/** A broker on a Redis Cluster (REDIS_CLUSTER_NODES, or a Cluster client): `new RedisClusterBroker(options)`. */
export const RedisClusterBroker: RedisClusterBrokerConstructor = RedisClusterBrokerClass
