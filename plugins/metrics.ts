// Prometheus metrics (docs/protocol.md §8): fastify-metrics for the HTTP route histogram and the
// process metrics, plus the realtime ones read from the node's plain counters and latency histograms
// (src/core/stats.ts) at scrape time: nothing of ours runs on the hot path, and nothing is plugged
// into the node.
//
// Where they live:
// - a host that registered fastify-metrics before the plugin (plugins/host-metrics.ts finds it): our
//   realtime_* metrics go into its registry, its endpoint serves them and its route metrics time our
//   routes; we register no fastify-metrics and serve no /metrics of our own;
// - otherwise a registry of this app's own, with a fastify-metrics of ours feeding it (fastify-metrics'
//   default, prom-client's global registry, breaks a second app in one process), served at /metrics.
//
// Two parts, because Fastify hooks apply to the context they are added in:
// - `metrics` (fastify-plugin, the host's context): the registry as `app.realtimeMetrics`, and with
//   `httpRoutes: 'all'` the timing of every route of the app;
// - `metricsEndpoint` (registered in the realtime routes' own context, beside them): GET /metrics,
//   optionally for admins only, and with `httpRoutes: 'realtime'` the timing of those routes alone.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fastifyMetricsModule from 'fastify-metrics'
import fp from 'fastify-plugin'
import promClient, { Counter, Gauge, Registry, type Aggregator, type Metric } from 'prom-client'
import type { Config } from '../src/config.js'
import { ForbiddenError } from '../src/core/auth/errors.js'
import type { RealtimeNode } from '../src/core/node.js'
import { closeCodeLabel } from '../src/core/protocol.js'
import type { LatencyHistogram } from '../src/core/stats.js'
import { IpcBroker } from '../src/core/brokers/ipc.js'
import { clusterScrape, HISTORY_BYTES_HELP } from '../src/workers/cluster-metrics.js'
import { TRANSPORTS, type TransportName } from '../src/core/connection.js'
import { kRealtimeNode } from './node.js'
import { findHostMetrics, OWN_DECORATOR, type HostMetrics } from './host-metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The Prometheus registry holding the realtime_* metrics: the host's fastify-metrics registry when
     * the host registered fastify-metrics first, else this app's own (GET /metrics renders it). With
     * `metrics: false` it is always our own, for a host that serves it from its own endpoint or listener.
     */
    realtimeMetrics: Registry
    /** What the two parts of this plugin share: internal, not exported by the package. */
    [kMetricsState]: MetricsState
  }
}

/** The decorator by which the two parts share MetricsState. */
const kMetricsState = Symbol('fastify-realtime metrics state')

/** What the two parts share. */
interface MetricsState {
  /** The host's fastify-metrics carries our metrics: no fastify-metrics and no /metrics of ours. */
  host: HostMetrics | undefined
  /** GET /metrics' full URL (prefix included), set just before the route is added. */
  url?: string
  /** Whether GET `url` was added, ours being the first: another one is a clash. */
  routed: boolean
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
  mirroredMultiLabelledCounter(registry, name, help, [label], function * () {
    for (const [value, count] of read()) yield [{ [label]: String(value) }, count]
  })
}

/** A counter with several labels, copied from plain numbers at scrape time. */
function mirroredMultiLabelledCounter (registry: Registry, name: string, help: string, labelNames: string[], read: () => Iterable<[Record<string, string>, number]>): void {
  registry.registerMetric(new Counter({
    name,
    help,
    labelNames,
    registers: [],
    collect () {
      this.reset()
      for (const [labels, count] of read()) this.inc(labels, count)
    }
  }))
}

/** `aggregator`: how a scrape of every worker (WORKERS > 1) combines the workers' values; the sum by default. */
function gauge (registry: Registry, name: string, help: string, read: () => number, aggregator: Aggregator = 'sum'): void {
  registry.registerMetric(new Gauge({ name, help, registers: [], aggregator, collect () { this.set(read()) } }))
}

/** A gauge per value of one label, read at scrape time. */
function labelledGauge (registry: Registry, name: string, help: string, label: string, read: () => Iterable<[string, number]>): void {
  registry.registerMetric(new Gauge({
    name,
    help,
    labelNames: [label],
    registers: [],
    collect () {
      for (const [value, count] of read()) this.set({ [label]: value }, count)
    }
  }))
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

/** Close counts summed per transport and closeCodeLabel: a bounded set of series, whatever codes peers close with. */
function * byTransportAndCloseCodeLabel (disconnects: Record<TransportName, ReadonlyMap<number, number>>): Iterable<[Record<string, string>, number]> {
  for (const transport of TRANSPORTS) {
    const labelled = new Map<string, number>()
    for (const [code, count] of disconnects[transport]) {
      const label = closeCodeLabel(code)
      labelled.set(label, (labelled.get(label) ?? 0) + count)
    }
    for (const [code, count] of labelled) yield [{ transport, code }, count]
  }
}

function realtimeMetrics (registry: Registry, node: RealtimeNode): void {
  const { stats, hub } = node
  labelledGauge(registry, 'realtime_connections', 'open connections on this node, by transport (websocket, sse)', 'transport', () => Object.entries(hub.transportCounts))
  gauge(registry, 'realtime_subscriptions', 'subscriptions on this node', () => hub.counts.subscriptions)
  gauge(registry, 'realtime_topics', 'topics with at least one local subscriber', () => hub.counts.topics)
  // Not summed across workers (a scrape with WORKERS > 1): two workers up would read 2. The lowest:
  // 1 only when every worker reaches its broker, 0 when any does not.
  gauge(registry, 'realtime_broker_up', '1 when the broker is reachable', () => node.broker.up ? 1 : 0, 'min')
  // A shard down leaves readiness at 200 (the other shards serve): this is what an alert can watch.
  // Each worker has subscriber connections of its own to the same shards: the worst worker's count
  // with WORKERS > 1, not a sum that would count one shard once per worker.
  gauge(registry, 'realtime_broker_unavailable_shards', 'Redis Cluster shards whose subscriber connection is down (their topics answer 503); 0 otherwise',
    () => node.broker.unavailableShards?.length ?? 0, 'max')
  // A worker on its primary's in-memory broker holds no history: the primary does, and adds its own
  // figure to the scrape of every worker (src/workers/cluster-metrics.ts); the workers' zeros are left out.
  gauge(registry, 'realtime_history_bytes', HISTORY_BYTES_HELP, () => node.broker.heldBytes ?? 0, node.broker instanceof IpcBroker ? 'omit' : 'sum')
  mirroredLabelledCounter(registry, 'realtime_publications_total', 'publications accepted on this node', 'source', () => Object.entries(stats.publications))
  mirroredCounter(registry, 'realtime_deliveries_total', 'message frames written to sockets', () => stats.deliveries)
  mirroredMultiLabelledCounter(registry, 'realtime_disconnects_total', 'connections closed, by transport and close code (peer-chosen codes by class)', ['transport', 'code'], () => byTransportAndCloseCodeLabel(stats.disconnects))
  mirroredLabelledCounter(registry, 'realtime_errors_total', 'error frames sent, by error code', 'code', () => stats.errors)
  mirroredLabelledCounter(registry, 'realtime_rate_limited_total', 'requests refused by a limit', 'scope', () => Object.entries(stats.rateLimited))
  mirroredLabelledCounter(registry, 'realtime_recoveries_total', 'subscribes with since', 'result', () => Object.entries(stats.recoveries))
  mirroredCounter(registry, 'realtime_control_healed_total', 'revokes and disconnects applied late, from the control log: pub/sub lost them', () => stats.controlHealed)
  mirroredHistogram(registry, 'realtime_publish_duration_seconds', "from accepting a publish to the broker's confirmation", stats.publishDuration)
  mirroredHistogram(registry, 'realtime_delivery_lag_seconds', "from a publication's ts to its local fan-out", stats.deliveryLag)
}

/** prom-client's default buckets, which fastify-metrics' histogram gets when given none; pinned here. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/**
 * fastify-metrics on `app`, into `registry`: the process metrics, and the route histogram
 * `http_request_duration_seconds` (method, route, status_code) for the routes of the context it is
 * registered in (its hooks are that context's). By default it times only the routes registered after
 * it (its onRoute hook lists them); `everyRoute` times every request of the context instead, the
 * routes a host registered before the plugin included, and requests no route matched as
 * route="__unknown__". No summary: a t-digest per request, measured expensive.
 */
async function registerFastifyMetrics (app: FastifyInstance, registry: Registry, everyRoute: boolean): Promise<void> {
  await app.register(fastifyMetrics, {
    // Our own decorator name, so a host's fastify-metrics (decorated `metrics`) stays intact.
    name: OWN_DECORATOR,
    endpoint: null,
    // Our prom-client, whose classes build the metrics of `registry`, rather than the one
    // fastify-metrics would look for (it prefers @platformatic/prom-client when installed).
    promClient,
    defaultMetrics: { enabled: true, register: registry },
    routeMetrics: {
      enabled: { histogram: true, summary: false },
      registeredRoutesOnly: !everyRoute,
      overrides: {
        histogram: { registers: [registry], buckets: BUCKETS },
        // fastify-metrics builds the summary even when it is disabled, by default into prom-client's
        // global registry, where a second app would collide with the first: no registry at all.
        summary: { registers: [] }
      }
    }
  })
}

/**
 * Adds the realtime_* metrics to the host's registry, and takes them out again when the app closes
 * (prom-client's global registry outlives the app: a new app in the same process must find it free).
 */
function shareWithHost (app: FastifyInstance, config: Config, host: HostMetrics, options: MetricsOptions): void {
  const { registry } = host
  try {
    realtimeMetrics(registry, app[kRealtimeNode])
  } catch (error) {
    throw new Error(`fastify-realtime: cannot add the realtime_* metrics to the registry of the host's fastify-metrics (app.${host.decorator}): ` +
      `${(error as Error).message} Another fastify-realtime app in this process shares that registry (prom-client's global one); ` +
      'register this one with metrics: false and serve app.realtimeMetrics yourself (docs/operations.md).', { cause: error })
  }
  // The MQTT bridge adds realtime_mqtt_* later: every realtime_* metric is ours.
  app.addHook('onClose', async () => {
    for (const metric of registry.getMetricsAsArray()) {
      if (metric.name.startsWith('realtime_')) registry.removeSingleMetric(metric.name)
    }
  })
  app.log.info(`metrics: the realtime_* metrics are in the registry of the host's fastify-metrics (app.${host.decorator}), which serves them and times the HTTP routes; no /metrics of ours`)
  if (config.metricsAuth) {
    app.log.warn(`METRICS_AUTH has no effect: the host's fastify-metrics (app.${host.decorator}) serves the metrics from its own endpoint; protect that one.`)
  }
  if (options.httpRoutes === 'all') {
    app.log.warn(`metricsRoutes: 'all' has no effect: the host's fastify-metrics (app.${host.decorator}) decides which routes it times.`)
  }
}

/**
 * When we serve /metrics, a fastify-metrics the host registers after the plugin cannot share it:
 * Fastify's own error for a second GET /metrics names neither, so our onRoute hook (it runs before the
 * route is added) refuses it with the fix; under another URL it works beside ours, which we warn about.
 */
function guardLateHost (app: FastifyInstance, state: MetricsState): void {
  app.addHook('onRoute', route => {
    // (Not told apart by handler: @fastify/websocket's onRoute hook wraps every route's.)
    if (state.url === undefined || route.url !== state.url || ![route.method].flat().includes('GET')) return
    if (!state.routed) state.routed = true
    else {
      throw new Error(`fastify-realtime already serves GET ${state.url}. If this is fastify-metrics, register it before fastify-realtime: ` +
        'the realtime_* metrics then go into its registry and the plugin serves no /metrics of its own (docs/operations.md); ' +
        'or register fastify-realtime with a prefix, or with metrics: false.')
    }
  })
  app.addHook('onReady', async () => {
    const late = findHostMetrics(app)
    if (late === undefined || state.url === undefined) return
    app.log.warn(`fastify-metrics (app.${late.decorator}) was registered after fastify-realtime: the realtime_* metrics and the realtime routes' timing are at ${state.url}, ` +
      "apart from the host's endpoint. Register fastify-metrics before fastify-realtime to have them in one.")
  })
}

export interface MetricsOptions {
  config: Config
  httpRoutes: HttpMetricsRoutes
}

async function metrics (app: FastifyInstance, options: MetricsOptions): Promise<void> {
  const { config } = options
  // metrics: false leaves the host's registry alone too.
  const host = config.metrics ? findHostMetrics(app) : undefined
  const registry = host?.registry ?? new Registry()
  const state: MetricsState = { host, routed: false }
  app.decorate('realtimeMetrics', registry)
  app.decorate(kMetricsState, state)
  if (host !== undefined) return shareWithHost(app, config, host, options)
  realtimeMetrics(registry, app[kRealtimeNode])
  if (!config.metrics) return
  guardLateHost(app, state)
  if (options.httpRoutes === 'all') await registerFastifyMetrics(app, registry, true)
}

export default fp(metrics, { fastify: '5.x', name: 'fastify-realtime-metrics', dependencies: ['fastify-realtime-node'] })

/**
 * GET /metrics, and the timing of the realtime routes when only they are timed. Registered in the
 * realtime routes' context (their prefix), before the routes: fastify-plugin keeps fastify-metrics'
 * hooks in that context, so they apply to its routes and never to a host's, and its onRoute hook sees
 * the routes registered after it. Nothing when the host's fastify-metrics serves our metrics.
 */
async function endpoint (app: FastifyInstance, options: MetricsOptions): Promise<void> {
  const { config } = options
  const state = app[kMetricsState]
  if (!config.metrics || state.host !== undefined) return
  if (options.httpRoutes === 'realtime') await registerFastifyMetrics(app, app.realtimeMetrics, false)
  if (config.metricsAuth && !app.realtimeAuth.enforced && config.apiKey === undefined) {
    app.log.warn('METRICS_AUTH is set, but the server runs open without API_KEY: everyone is admin, so GET /metrics stays open. Set API_KEY or a JWT key.')
  }
  // The same rule as the admin API: the API key (X-API-Key) or a token with `admin: true`. Refusals
  // are 401/403 in the API's error shape (the realtime routes' context has their error handler).
  const adminOnly = async (request: FastifyRequest): Promise<void> => {
    const identity = await app.realtimeAuth.authenticate(request)
    if (!identity.admin) throw new ForbiddenError('admin only: use the API key or an admin token')
  }
  const registry = app.realtimeMetrics
  // In a worker of the standalone server (WORKERS > 1): every worker's metrics, through the primary.
  const scrape = clusterScrape(registry) ?? (async () => await registry.metrics())
  state.url = `${app.prefix}/metrics`
  app.get('/metrics', { logLevel: 'warn', config: { rateLimit: false }, onRequest: config.metricsAuth ? adminOnly : undefined }, async (_request, reply) => {
    reply.type(registry.contentType)
    return await scrape()
  })
}

export const metricsEndpoint = fp(endpoint, { fastify: '5.x', name: 'fastify-realtime-metrics-endpoint', dependencies: ['fastify-realtime-metrics', 'fastify-realtime-auth'] })
