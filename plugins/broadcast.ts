// Builds this node around the broker (in-memory, or Redis: from REDIS_URL / REDIS_CLUSTER_NODES, or
// on an ioredis client handed over as `redis`), starts it, and decorates the instance with `realtime`:
// the small RealtimeApi that host routes publish through. The node itself is kept under a symbol, for
// the realtime plugins that need its insides (connections, metrics); the routes get it from the
// umbrella plugin in their options.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ConfigError, type Config } from '../src/config.js'
import { createRealtimeApi, type RealtimeApi } from '../src/core/api.js'
import type { Broker } from '../src/core/broker.js'
import { MemoryBroker } from '../src/core/brokers/memory.js'
import { RedisBroker } from '../src/core/brokers/redis.js'
import { RedisBrokerBase } from '../src/core/brokers/redis-base.js'
import { checkRedisClient, isClusterClient, type RedisClientLike } from '../src/core/brokers/redis-client-like.js'
import { letQuitEnd } from '../src/core/brokers/redis-client.js'
import { RedisClusterBroker } from '../src/core/brokers/redis-cluster.js'
import type { Identity } from '../src/core/identity.js'
import { RealtimeNode } from '../src/core/node.js'
import redisConnection from './redis-connection.js'

/** The decorator holding the RealtimeNode: internal, not exported by the package. */
export const kRealtimeNode = Symbol('fastify-realtime.node')

declare module 'fastify' {
  interface FastifyInstance {
    /** publish, broadcast, history, presence, disconnect, revoke, info, addHook, rpc (see RealtimeApi). */
    // Spelled as an import type: an imported name used only inside this augmentation is left out of
    // the emitted .d.ts, which then fails in a host's strict type check.
    realtime: RealtimeApi<import('fastify').FastifyRequest>
    /** The node behind `realtime`, for the realtime plugins only. */
    [kRealtimeNode]: RealtimeNode
  }
}

export interface BroadcastOptions {
  config: Config
  /** A broker of your own (tests, other backends); by default chosen from the config (createBroker). */
  broker?: Broker
  /** An ioredis client (Redis or Cluster) for the Redis broker, never closed by the plugin (createBroker). */
  redis?: RedisClientLike
  /**
   * Verifies the token of a websocket `refresh` frame: the auth plugin's `realtimeAuth.refresh`, which
   * is why the umbrella registers auth first. Without it, refresh is refused.
   */
  refreshIdentity?: (token: string) => Promise<Identity>
}

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
  if (config.redisUrl === undefined) return new MemoryBroker({ historySize, historyTtl, historyMemoryLimit })
  return new RedisBroker({ url: config.redisUrl, ...settings })
}

/** `broker` if given, else createBroker(config, redis); both is a mistake (which one would be used?). */
export function brokerFor (config: Config, options: { broker?: Broker, redis?: RedisClientLike }): Broker {
  if (options.broker !== undefined && options.redis !== undefined) {
    throw new ConfigError('redis', 'cannot be given with broker: hand the client to your broker instead')
  }
  return options.broker ?? createBroker(config, options.redis)
}

async function broadcast (app: FastifyInstance, options: BroadcastOptions): Promise<void> {
  const { config, refreshIdentity } = options
  const broker = brokerFor(config, options)
  const node = new RealtimeNode({ config, broker, log: app.log, refreshIdentity })
  // Redis out of reach is an outage, not a failure to start: the node serves (readiness 503,
  // publishes 503) and is ready once Redis answers. A Redis that refuses us rejects here instead.
  await node.start()
  if (!broker.up) {
    const reason = broker instanceof RedisBroker || broker instanceof RedisClusterBroker ? broker.unreachableReason : undefined
    app.log.warn({ broker: 'down', reason }, 'the broker is unreachable at start: /health/ready answers 503 and publishes fail until it connects')
  }
  // The broker's own command connection goes to @fastify/redis, which closes it: only once it is
  // ready, since @fastify/redis would hold the start until it is (plugins/redis-connection.ts). A
  // connection still down here stays the broker's, which closes it in node.close().
  const released = broker instanceof RedisBrokerBase && broker.commands.status === 'ready' ? broker.releaseCommands() : undefined
  if (released !== undefined) await app.register(redisConnection, { client: released })
  app.decorate('realtime', createRealtimeApi<FastifyRequest>(node))
  app.decorate(kRealtimeNode, node)
  // Hooks and RPC methods are added before the app is ready, as Fastify's own are.
  app.addHook('onReady', async () => {
    node.hooks.seal()
    node.rpcMethods.seal()
  })
  // Added after @fastify/redis's: onClose hooks run last-added first, so the node leaves the registry
  // (commands on that connection) before @fastify/redis quits it.
  app.addHook('onClose', async () => {
    await node.close()
    if (released !== undefined) letQuitEnd(released)
  })
}

export default fp(broadcast, { fastify: '5.x', name: 'fastify-realtime-broadcast' })
