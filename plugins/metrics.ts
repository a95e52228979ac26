// Prometheus metrics (docs/protocol.md §8): fastify-metrics for the HTTP and process metrics, plus the
// realtime ones read from the node's plain counters and latency histograms (src/core/stats.ts) at
// scrape time: nothing of this plugin runs on the hot path, and nothing is plugged into the node. Everything lives in a registry
// of this app's own: fastify-metrics' default global registry breaks a second app in one process.
//
// Two parts, because Fastify hooks apply to the context they are added in:
// - `metrics` (fastify-plugin, the host's context): the registry as `app.realtimeMetrics`, and with
//   `httpRoutes: 'all'` the timing of every route of the app;
// - `metricsEndpoint` (registered in the realtime routes' own context, beside them): GET /metrics,
//   optionally for admins only, and with `httpRoutes: 'realtime'` the timing of those routes alone.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fastifyMetricsModule from 'fastify-metrics'
import fp from 'fastify-plugin'
import { Counter, Gauge, Registry, type Metric } from 'prom-client'
import type { Config } from '../src/config.js'
import { ForbiddenError } from '../src/core/auth/errors.js'
import { RedisClusterBroker } from '../src/core/brokers/redis-cluster.js'
import type { RealtimeNode } from '../src/core/node.js'
import { closeCodeLabel } from '../src/core/protocol.js'
import type { LatencyHistogram } from '../src/core/stats.js'
import { kRealtimeNode } from './broadcast.js'
import { timeHttpRoutes } from './http-metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * This app's Prometheus registry (GET /metrics renders it). With `metrics: false` it still holds
     * the realtime_* metrics, for a host that serves them from its own endpoint or listener.
     */
    realtimeMetrics: Registry
  }
}

/**
 * Which routes fastify-metrics times into `http_request_duration_seconds`: only the realtime plugin's
 * own (the default), or every route of the app the plugin is registered in, the host's included.
 */
export type HttpMetricsRoutes = 'realtime' | 'all'

// fastify-metrics is CommonJS with `exports.default`: under NodeNext its default import is the module.
const fastifyMetrics = fastifyMetricsModule.default

/** A counter whose value is copied from a plain number at scrape time. */
function mirroredCounter (registry: Registry, name: string, help: string, read: () => number): void {
  registry.registerMetric(new Counter({
    name,
    help,
    registers: [],
    collect () { this.reset(); this.inc(read()) }
  }))
}

/** A labelled counter copied from a record or map of plain numbers at scrape time. */
function mirroredLabelledCounter (registry: Registry, name: string, help: string, label: string, read: () => Iterable<[string | number, number]>): void {
  registry.registerMetric(new Counter({
    name,
    help,
    labelNames: [label],
    registers: [],
    collect () {
      this.reset()
      for (const [value, count] of read()) this.inc({ [label]: String(value) }, count)
    }
  }))
}

function gauge (registry: Registry, name: string, help: string, read: () => number): void {
  registry.registerMetric(new Gauge({ name, help, registers: [], collect () { this.set(read()) } }))
}

/**
 * A histogram copied from a LatencyHistogram at scrape time. prom-client's Histogram can only be fed
 * observations, so this is a metric of our own that reports what prom-client's would (cumulative
 * `_bucket` series with `le`, then `+Inf`, `_sum` and `_count`): the registry renders it as it renders
 * prom-client's own.
 */
function mirroredHistogram (registry: Registry, name: string, help: string, source: LatencyHistogram): void {
  const values = (): Array<{ labels: Record<string, string | number>, value: number, metricName: string }> => {
    let cumulative = 0
    const buckets = source.bounds.map((le, i) => ({ labels: { le }, value: (cumulative += source.counts[i]), metricName: `${name}_bucket` }))
    return [
      ...buckets,
      { labels: { le: '+Inf' }, value: source.count, metricName: `${name}_bucket` },
      { labels: {}, value: source.sum, metricName: `${name}_sum` },
      { labels: {}, value: source.count, metricName: `${name}_count` }
    ]
  }
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get: async () => ({ name, help, type: 'histogram', aggregator: 'sum', values: values() }),
    // The counts belong to the node; a registry reset leaves them, as it leaves the mirrored counters.
    reset: () => {}
  }
  registry.registerMetric(metric as unknown as Metric)
}

/** Close counts summed per closeCodeLabel: a bounded set of series, whatever codes peers close with. */
function byCloseCodeLabel (disconnects: ReadonlyMap<number, number>): Map<string, number> {
  const labelled = new Map<string, number>()
  for (const [code, count] of disconnects) {
    const label = closeCodeLabel(code)
    labelled.set(label, (labelled.get(label) ?? 0) + count)
  }
  return labelled
}

function realtimeMetrics (registry: Registry, node: RealtimeNode): void {
  const { stats, hub } = node
  gauge(registry, 'realtime_connections', 'open websocket connections on this node', () => hub.counts.connections)
  gauge(registry, 'realtime_subscriptions', 'subscriptions on this node', () => hub.counts.subscriptions)
  gauge(registry, 'realtime_topics', 'topics with at least one local subscriber', () => hub.counts.topics)
  gauge(registry, 'realtime_broker_up', '1 when the broker is reachable', () => node.broker.up ? 1 : 0)
  // A shard down leaves readiness at 200 (the other shards serve): this is what an alert can watch.
  gauge(registry, 'realtime_broker_unavailable_shards', 'Redis Cluster shards whose subscriber connection is down (their topics answer 503); 0 otherwise',
    () => node.broker instanceof RedisClusterBroker ? node.broker.unavailableShards.length : 0)
  gauge(registry, 'realtime_history_bytes', 'approximate bytes of history held in this process (in-memory broker; 0 with Redis)', () => node.broker.heldBytes ?? 0)
  mirroredLabelledCounter(registry, 'realtime_publications_total', 'publications accepted on this node', 'source', () => Object.entries(stats.publications))
  mirroredCounter(registry, 'realtime_deliveries_total', 'message frames written to sockets', () => stats.deliveries)
  mirroredLabelledCounter(registry, 'realtime_disconnects_total', 'connections closed, by close code (peer-chosen codes by class)', 'code', () => byCloseCodeLabel(stats.disconnects))
  mirroredLabelledCounter(registry, 'realtime_errors_total', 'error frames sent, by error code', 'code', () => stats.errors)
  mirroredLabelledCounter(registry, 'realtime_rate_limited_total', 'requests refused by a limit', 'scope', () => Object.entries(stats.rateLimited))
  mirroredLabelledCounter(registry, 'realtime_recoveries_total', 'subscribes with since', 'result', () => Object.entries(stats.recoveries))
  mirroredHistogram(registry, 'realtime_publish_duration_seconds', "from accepting a publish to the broker's confirmation", stats.publishDuration)
  mirroredHistogram(registry, 'realtime_delivery_lag_seconds', "from a publication's ts to its local fan-out", stats.deliveryLag)
}

/**
 * fastify-metrics on `app`: it times the routes of the context it is registered in (its hooks are
 * that context's), and collects the process metrics. By default it times only the routes registered
 * after it (an onRoute hook lists them); `everyRoute` times every request of the context instead,
 * including the routes a host registered before the plugin (and, as route="__unknown__", requests no
 * route matched).
 */
async function registerHttpMetrics (app: FastifyInstance, registry: Registry, everyRoute = false): Promise<void> {
  await app.register(fastifyMetrics, {
    // Our own decorator name and route, so a host's fastify-metrics (decorated `metrics`) stays intact.
    name: 'realtimeHttpMetrics',
    endpoint: null,
    defaultMetrics: { enabled: true, register: registry },
    // The route histogram is timeHttpRoutes' (plugins/http-metrics.ts): the same series for a fraction
    // of the cost per request. (fastify-metrics' summary, a t-digest per request, was dropped earlier.)
    routeMetrics: { enabled: false }
  })
  timeHttpRoutes(app, registry, everyRoute)
}

export interface MetricsOptions {
  config: Config
  httpRoutes: HttpMetricsRoutes
}

async function metrics (app: FastifyInstance, options: MetricsOptions): Promise<void> {
  const registry = new Registry()
  app.decorate('realtimeMetrics', registry)
  realtimeMetrics(registry, app[kRealtimeNode])
  if (options.config.metrics && options.httpRoutes === 'all') await registerHttpMetrics(app, registry, true)
}

export default fp(metrics, { fastify: '5.x', name: 'fastify-realtime-metrics', dependencies: ['fastify-realtime-broadcast'] })

/**
 * GET /metrics, and the timing of the realtime routes when only they are timed. Registered in the
 * realtime routes' context (their prefix), before the routes: fastify-plugin keeps fastify-metrics'
 * hooks in that context, so they apply to its routes and never to a host's, and its onRoute hook sees
 * the routes registered after it.
 */
async function endpoint (app: FastifyInstance, options: MetricsOptions): Promise<void> {
  const { config } = options
  if (!config.metrics) return
  const registry = app.realtimeMetrics
  if (options.httpRoutes === 'realtime') await registerHttpMetrics(app, registry)
  if (config.metricsAuth && !app.realtimeAuth.enforced && config.apiKey === undefined) {
    app.log.warn('METRICS_AUTH is set, but the server runs open without API_KEY: everyone is admin, so GET /metrics stays open. Set API_KEY or a JWT key.')
  }
  // The same rule as the admin API: the API key (X-API-Key) or a token with `admin: true`. Refusals
  // are 401/403 in the API's error shape (the realtime routes' context has their error handler).
  const adminOnly = async (request: FastifyRequest): Promise<void> => {
    const identity = await app.realtimeAuth.authenticate(request)
    if (!identity.admin) throw new ForbiddenError('admin only: use the API key or an admin token')
  }
  app.get('/metrics', { logLevel: 'warn', onRequest: config.metricsAuth ? adminOnly : undefined }, async (_request, reply) => {
    reply.type(registry.contentType)
    return registry.metrics()
  })
}

export const metricsEndpoint = fp(endpoint, { fastify: '5.x', name: 'fastify-realtime-metrics-endpoint', dependencies: ['fastify-realtime-metrics', 'fastify-realtime-auth'] })
