// Finding a fastify-metrics the host registered before the plugin, to add our metrics to its registry
// instead of serving a second /metrics. fastify-metrics decorates the app with an object whose
// `client` is the prom-client it uses; its endpoint always serves that client's global registry
// (`client.register`), merged with any registry of its options. The decorator's name is an option
// (`name`, default `metrics`), so it is looked up by shape: fastify-plugin's name says whether one was
// registered at all, the decorator's shape which value it is.
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'

/** The decorator of the fastify-metrics the plugin registers itself (never `metrics`, the host's). */
export const OWN_DECORATOR = 'realtimeHttpMetrics'

interface FastifyMetricsLike {
  client: { register: Registry }
  initMetricsInRegistry: () => void
}

export interface HostMetrics {
  /** The host's decorator, e.g. `metrics`, for messages. */
  decorator: string
  /** The registry the host's endpoint serves. */
  registry: Registry
}

function isFastifyMetrics (value: unknown): value is FastifyMetricsLike {
  if (value === null || typeof value !== 'object') return false
  const candidate = value as Partial<FastifyMetricsLike>
  const register = candidate.client?.register as Partial<Registry> | undefined
  return typeof candidate.initMetricsInRegistry === 'function' &&
    typeof register?.registerMetric === 'function' &&
    typeof register.getSingleMetric === 'function' &&
    typeof register.removeSingleMetric === 'function' &&
    typeof register.metrics === 'function'
}

/** The host's fastify-metrics visible from `app` (registered in its context or a parent), if any. */
export function findHostMetrics (app: FastifyInstance): HostMetrics | undefined {
  if (!app.hasPlugin('fastify-metrics')) return undefined
  const decorated = app as unknown as Record<string, unknown>
  if (app.hasDecorator('metrics') && isFastifyMetrics(decorated.metrics)) {
    return { decorator: 'metrics', registry: decorated.metrics.client.register }
  }
  // Registered under another name: decorators are enumerable properties of the instance.
  for (const key in app) {
    if (key === OWN_DECORATOR) continue
    let value: unknown
    try { value = decorated[key] } catch { continue }
    if (isFastifyMetrics(value)) return { decorator: key, registry: value.client.register }
  }
  return undefined
}
