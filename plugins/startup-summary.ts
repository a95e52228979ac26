// The one start-up line of a realtime node: what an operator checks first (broker, auth mode, prefix,
// limits), logged when the app is ready, standalone or embedded. Never a secret.
import type { Config } from '../src/config.js'
import { verificationKey } from '../src/core/auth/keys.js'
import { redactCredentials, redactUrl } from '../src/core/brokers/redis-client.js'
import type { RealtimeOptions } from './realtime.js'

export type SummaryOptions = Pick<RealtimeOptions, 'prefix' | 'broker' | 'verify' | 'verifyToken' | 'metricsRoutes'>

/** Who verifies callers: 'open', 'jwt HS256' (RS256, ES256), or the host's own functions. */
function authMode (config: Config, options: SummaryOptions): string {
  if (options.verify !== undefined) return 'host verify'
  const key = verificationKey(config)
  if (key !== undefined) return `jwt ${key.algorithms.join('|')}`
  return options.verifyToken !== undefined ? 'host verifyToken' : 'open'
}

/** The one start-up line: what an operator checks first (broker, auth mode, prefix, limits). Never a secret. */
export function startupSummary (config: Config, options: SummaryOptions): Record<string, unknown> & { broker: string, auth: string, prefix: string } {
  // The same choice as createBroker (plugins/broadcast.ts): REDIS_CLUSTER_NODES wins over REDIS_URL.
  const broker = options.broker !== undefined ? 'custom' : config.redisClusterNodes !== undefined ? 'redis-cluster' : config.redisUrl !== undefined ? 'redis' : 'memory'
  return {
    node: config.nodeId,
    broker,
    ...(broker === 'redis' ? { redis: redactUrl(config.redisUrl as string), redisPrefix: config.redisPrefix } : {}),
    ...(broker === 'redis-cluster' ? { redisCluster: (config.redisClusterNodes as string[]).map(redactCredentials).join(','), redisPrefix: config.redisPrefix } : {}),
    auth: authMode(config, options),
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
