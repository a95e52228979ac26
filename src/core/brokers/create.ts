// Which broker a node runs on: the in-memory one, or Redis (one server or a Cluster) from the config or
// on a client handed over. The one place outside the brokers themselves that names them: everything
// else sees the Broker interface and its optional parts (broker.ts).
import { ConfigError, type Config } from '../../config.js'
import type { Broker } from '../broker.js'
import { IpcBroker } from './ipc.js'
import { isWorkerOfPrimary, type IpcEndpoint } from './ipc-protocol.js'
import { MemoryBroker } from './memory.js'
import { RedisBroker } from './redis.js'
import { checkRedisClient, isClusterClient, type RedisClientLike } from './redis-client-like.js'
import { RedisClusterBroker } from './redis-cluster.js'

/**
 * The broker the config selects, or the Redis broker on `redis`: an ioredis client handed over
 * (typically a host's app.redis), recognised by its shape since it may come from another ioredis
 * major; a Cluster client gets the Redis Cluster broker. The broker runs its commands on it and never
 * closes it; its subscriber connections are its own (src/core/brokers/redis-base.ts).
 * From REDIS_URL or REDIS_CLUSTER_NODES the broker opens its own connections, configured to fail fast
 * during outages (src/core/brokers/redis-client.ts), and closes them; the plugin hands the command
 * connection's close to @fastify/redis (plugins/redis-connection.ts). Nothing connects before start().
 * The core has no Fastify imports: these brokers also run outside Fastify.
 */
export function createBroker (config: Config, redis?: RedisClientLike): Broker {
  const { historySize, historyTtl, historyMemoryLimit } = config
  const settings = { prefix: config.redisPrefix, nodeId: config.nodeId, historySize, historyTtl }
  if (redis !== undefined) {
    if (config.redisUrl !== undefined || config.redisClusterNodes !== undefined) {
      throw new ConfigError('redis', 'cannot be given with redisUrl or redisClusterNodes: the client says where Redis is')
    }
    const client = checkRedisClient(redis, message => { throw new ConfigError('redis', message) })
    return isClusterClient(client) ? new RedisClusterBroker({ client, ...settings }) : new RedisBroker({ client, ...settings })
  }
  // REDIS_CLUSTER_NODES replaces REDIS_URL: the same broker on a Redis Cluster (docs/scaling.md).
  if (config.redisClusterNodes !== undefined) {
    // The entries as written: a URL entry carries the credentials and TLS of every connection.
    return new RedisClusterBroker({ nodes: config.redisClusterNodes, ...settings })
  }
  if (config.redisUrl === undefined) {
    // A worker of the standalone server's primary (WORKERS > 1, src/workers/): the primary holds the
    // one in-memory broker that all its workers share (brokers/ipc-host.ts).
    if (isWorkerOfPrimary()) return new IpcBroker(process as unknown as IpcEndpoint)
    return new MemoryBroker({ historySize, historyTtl, historyMemoryLimit })
  }
  return new RedisBroker({ url: config.redisUrl, ...settings })
}

/** `broker` if given, else createBroker(config, redis); both is a mistake (which one would be used?). */
export function brokerFor (config: Config, options: { broker?: Broker, redis?: RedisClientLike }): Broker {
  if (options.broker !== undefined && options.redis !== undefined) {
    throw new ConfigError('redis', 'cannot be given with broker: hand the client to your broker instead')
  }
  return options.broker ?? createBroker(config, options.redis)
}
