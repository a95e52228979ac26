// The one start-up line of a realtime node: what an operator checks first (broker, auth mode, prefix,
// limits), logged when the app is ready, standalone or embedded. Never a secret.
import type { Config } from '../src/config.js'
import { clientAddress, isClusterClient } from '../src/core/brokers/redis-client-like.js'
import { redactCredentials, redactUrl } from '../src/core/brokers/redis-client.js'
import type { RealtimeOptions } from './realtime.js'

export type SummaryOptions = Pick<RealtimeOptions, 'prefix' | 'broker' | 'redis' | 'metricsRoutes'> & {
  /** Who verifies callers: the auth plugin's `realtimeAuth.mode` ('jwt HS256', 'host @fastify/jwt', 'open'...). */
  auth: string
}

/** Where Redis is (never a password) and the key prefix, for a Redis broker of ours; nothing otherwise. */
function redisDetails (config: Config, broker: string, handed: SummaryOptions['redis']): Record<string, string> {
  if (broker !== 'redis' && broker !== 'redis-cluster') return {}
  const { redisPrefix } = config
  if (handed !== undefined) return { redis: `handed client${isClusterClient(handed) ? '' : ` at ${clientAddress(handed)}`}`, redisPrefix }
  if (broker === 'redis') return { redis: redactUrl(config.redisUrl as string), redisPrefix }
  return { redisCluster: (config.redisClusterNodes as string[]).map(redactCredentials).join(','), redisPrefix }
}

/** The one start-up line: what an operator checks first (broker, auth mode, prefix, limits). Never a secret. */
export function startupSummary (config: Config, options: SummaryOptions): Record<string, unknown> & { broker: string, auth: string, prefix: string } {
  // The same choice as createBroker (src/core/brokers/create.ts): a handed client, else REDIS_CLUSTER_NODES over REDIS_URL.
  const { redis: handed } = options
  const broker = options.broker !== undefined
    ? 'custom'
    : handed !== undefined
      ? (isClusterClient(handed) ? 'redis-cluster' : 'redis')
      : config.redisClusterNodes !== undefined ? 'redis-cluster' : config.redisUrl !== undefined ? 'redis' : 'memory'
  return {
    node: config.nodeId,
    broker,
    // The standalone server's processes on one port (src/workers/): each logs this line as its node.
    ...(config.workers > 1 ? { workers: config.workers } : {}),
    ...redisDetails(config, broker, handed),
    auth: options.auth,
    apiKey: config.apiKey !== undefined,
    prefix: options.prefix ?? '/',
    metrics: config.metrics ? { auth: config.metricsAuth, routes: options.metricsRoutes } : false,
    limits: {
      maxConnections: config.maxConnections,
      maxConnectionsPerUser: config.maxConnectionsPerUser,
      maxSubscriptions: config.maxSubscriptions,
      maxPayload: config.maxPayload,
      messageRate: config.messageRate,
      messageBurst: config.messageBurst,
      rateLimitMax: config.rateLimitMax,
      rateLimitWindow: config.rateLimitWindow,
      sendBufferLimit: config.sendBufferLimit,
      historySize: config.historySize,
      historyTtl: config.historyTtl
    }
  }
}
