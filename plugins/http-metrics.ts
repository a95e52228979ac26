// `http_request_duration_seconds`, the HTTP route histogram fastify-metrics would keep, at a fraction of
// its cost per request. fastify-metrics starts a prom-client timer in onRequest and observes it with a
// labels object in onResponse, reading `request.routeOptions` (a new frozen object on every read) four
// times: about 2-3 µs of each HTTP publish (BENCHMARKS.md). Here each timed route has an onResponse
// hook that knows its labels, reads Fastify's own `reply.elapsedTime` and counts into plain numbers,
// copied to the registry at scrape time like the realtime_* metrics. Same name, help, labels (method,
// route, status_code), buckets, and the same choice of requests: fastify-metrics' defaults as
// plugins/metrics.ts configured them.
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { Metric, Registry } from 'prom-client'

/** prom-client's default buckets, which fastify-metrics' histogram used. */
const BUCKETS: readonly number[] = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
/** Methods fastify-metrics leaves out by default. */
const UNTIMED_METHODS = new Set(['HEAD', 'OPTIONS', 'TRACE', 'CONNECT'])
/** The route label of a request no route matched (fastify-metrics' `invalidRouteGroup`). */
const UNKNOWN_ROUTE = '__unknown__'
const NAME = 'http_request_duration_seconds'
const HELP = 'request duration in seconds'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** fastify-metrics' route options, honoured here too: no timing at all, or another route label. */
    disableMetrics?: boolean
    statsId?: string
  }
}

/** One labelled series: counts per bucket (not cumulative), their sum and count. */
interface Series {
  labels: { method: string, route: string, status_code: number }
  counts: number[]
  sum: number
  count: number
}

/**
 * Times the requests of `app`'s context into `registry`. `everyRoute`: every request, the routes
 * registered before this call and requests no route matched included (route="__unknown__"); else only
 * the routes registered in this context after this call (an onRoute hook lists them).
 */
export function timeHttpRoutes (app: FastifyInstance, registry: Registry, everyRoute: boolean): void {
  const series = new Map<string, Series>()
  /** Each route hook's own index of its series (method -> status -> series), emptied on reset. */
  const routeIndexes: Array<Map<string, Map<number, Series>>> = []

  if (everyRoute) {
    // Every request, also those no route matched: one app-wide hook that reads the route per request.
    app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
      const method = request.method
      if (!UNTIMED_METHODS.has(method)) {
        // One read: each read of routeOptions builds a new object.
        const route = request.routeOptions
        if (route.config.disableMetrics !== true) {
          observe(seriesOf(series, method, route.config.statsId ?? route.url ?? UNKNOWN_ROUTE, reply.statusCode), reply.elapsedTime / 1000)
        }
      }
      done()
    })
  } else {
    // Only this context's routes: each gets its own onResponse hook that knows its label, so a request
    // reads no route options and builds no key (about 2,500 instructions of each HTTP publish; BENCHMARKS.md).
    app.addHook('onRoute', route => {
      const config = route.config as { disableMetrics?: boolean, statsId?: string } | undefined
      if (config?.disableMetrics === true) return
      const label = config?.statsId ?? route.url
      const index = new Map<string, Map<number, Series>>()
      routeIndexes.push(index)
      const timeRoute = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
        const method = request.method
        if (!UNTIMED_METHODS.has(method)) {
          let byStatus = index.get(method)
          if (byStatus === undefined) index.set(method, byStatus = new Map())
          const status = reply.statusCode
          let entry = byStatus.get(status)
          if (entry === undefined) byStatus.set(status, entry = seriesOf(series, method, label, status))
          observe(entry, reply.elapsedTime / 1000)
        }
        done()
      }
      route.onResponse = route.onResponse === undefined ? [timeRoute] : [route.onResponse, timeRoute].flat()
    })
  }

  registry.registerMetric({
    name: NAME,
    help: HELP,
    type: 'histogram',
    aggregator: 'sum',
    get: async () => ({ name: NAME, help: HELP, type: 'histogram', aggregator: 'sum', values: [...series.values()].flatMap(exposition) }),
    reset: () => {
      series.clear()
      for (const index of routeIndexes) index.clear()
    }
  } as unknown as Metric)
}

/** The series of one label set, created at its first request. */
function seriesOf (series: Map<string, Series>, method: string, route: string, status: number): Series {
  const key = `${method} ${status} ${route}`
  let entry = series.get(key)
  if (entry === undefined) {
    entry = { labels: { method, route, status_code: status }, counts: BUCKETS.map(() => 0), sum: 0, count: 0 }
    series.set(key, entry)
  }
  return entry
}

function observe (entry: Series, seconds: number): void {
  for (let i = 0; i < BUCKETS.length; i++) {
    if (seconds <= BUCKETS[i]) {
      entry.counts[i]++
      break
    }
  }
  entry.sum += seconds
  entry.count++
}

/** A series as prom-client's histogram exposes it: cumulative `_bucket`s with `le`, `+Inf`, `_sum`, `_count`. */
function exposition (entry: Series): Array<{ labels: Record<string, string | number>, value: number, metricName: string }> {
  let cumulative = 0
  return [
    ...BUCKETS.map((le, i) => ({ labels: { le, ...entry.labels }, value: (cumulative += entry.counts[i]), metricName: `${NAME}_bucket` })),
    { labels: { le: '+Inf', ...entry.labels }, value: entry.count, metricName: `${NAME}_bucket` },
    { labels: entry.labels, value: entry.sum, metricName: `${NAME}_sum` },
    { labels: entry.labels, value: entry.count, metricName: `${NAME}_count` }
  ]
}
