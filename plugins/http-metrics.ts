// `http_request_duration_seconds`, the HTTP route histogram fastify-metrics would keep, at a fraction of
// its cost per request. fastify-metrics starts a prom-client timer in onRequest and observes it with a
// labels object in onResponse, reading `request.routeOptions` (a new frozen object on every read) four
// times: about 2-3 µs of each HTTP publish (BENCHMARKS.md). Here one onResponse hook reads Fastify's
// own `reply.elapsedTime` and counts into plain numbers, copied to the registry at scrape time like
// the realtime_* metrics. Same name, help, labels (method, route, status_code), buckets, and the same
// choice of requests: fastify-metrics' defaults as plugins/metrics.ts configured them.
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
  /** method -> urls timed; undefined when every route is. */
  const timed = everyRoute ? undefined : new Map<string, Set<string>>()
  if (timed !== undefined) {
    app.addHook('onRoute', route => {
      for (const method of [route.method].flat()) {
        if (UNTIMED_METHODS.has(method)) continue
        let urls = timed.get(method)
        if (urls === undefined) timed.set(method, urls = new Set())
        urls.add(route.url)
      }
    })
  }

  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    const method = request.method
    if (!UNTIMED_METHODS.has(method)) {
      // One read: each read of routeOptions builds and freezes a new object.
      const route = request.routeOptions
      if (route.config.disableMetrics !== true && (timed === undefined || timed.get(method)?.has(route.url ?? request.url) === true)) {
        observe(series, method, route.config.statsId ?? route.url ?? UNKNOWN_ROUTE, reply.statusCode, reply.elapsedTime / 1000)
      }
    }
    done()
  })

  registry.registerMetric({
    name: NAME,
    help: HELP,
    type: 'histogram',
    aggregator: 'sum',
    get: async () => ({ name: NAME, help: HELP, type: 'histogram', aggregator: 'sum', values: [...series.values()].flatMap(exposition) }),
    reset: () => series.clear()
  } as unknown as Metric)
}

function observe (series: Map<string, Series>, method: string, route: string, status: number, seconds: number): void {
  const key = `${method} ${status} ${route}`
  let entry = series.get(key)
  if (entry === undefined) {
    entry = { labels: { method, route, status_code: status }, counts: BUCKETS.map(() => 0), sum: 0, count: 0 }
    series.set(key, entry)
  }
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
