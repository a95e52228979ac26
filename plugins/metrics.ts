// Prometheus metrics (PROTOCOL.md §6): fastify-metrics for the HTTP and process metrics, plus the
// realtime ones read from the node's plain counters at scrape time. Everything lives in a registry
// of this app's own: fastify-metrics' default global registry breaks a second app in one process.
import type { FastifyInstance } from 'fastify'
import fastifyMetricsModule from 'fastify-metrics'
import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { RealtimeNode } from '../src/core/node.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's Prometheus registry (GET /metrics renders it). */
    realtimeMetrics: Registry
  }
}

// fastify-metrics is CommonJS with `exports.default`: under NodeNext its default import is the module.
const fastifyMetrics = fastifyMetricsModule.default

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

/** A counter whose value is copied from a plain number at scrape time. */
function mirroredCounter (registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name, help, registers: [registry],
    collect () { this.reset(); this.inc(read()) }
  })
}

/** A labelled counter copied from a record or map of plain numbers at scrape time. */
function mirroredLabelledCounter (registry: Registry, name: string, help: string, label: string, read: () => Iterable<[string | number, number]>): void {
  new Counter({
    name, help, labelNames: [label], registers: [registry],
    collect () {
      this.reset()
      for (const [value, count] of read()) this.inc({ [label]: String(value) }, count)
    }
  })
}

function gauge (registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({ name, help, registers: [registry], collect () { this.set(read()) } })
}

function realtimeMetrics (registry: Registry, node: RealtimeNode): void {
  const { stats, hub } = node
  gauge(registry, 'realtime_connections', 'open websocket connections on this node', () => hub.counts.connections)
  gauge(registry, 'realtime_subscriptions', 'subscriptions on this node', () => hub.counts.subscriptions)
  gauge(registry, 'realtime_topics', 'topics with at least one local subscriber', () => hub.counts.topics)
  gauge(registry, 'realtime_broker_up', '1 when the broker is reachable', () => node.broker.up ? 1 : 0)
  mirroredLabelledCounter(registry, 'realtime_publications_total', 'publications accepted on this node', 'source', () => Object.entries(stats.publications))
  mirroredCounter(registry, 'realtime_deliveries_total', 'message frames written to sockets', () => stats.deliveries)
  mirroredLabelledCounter(registry, 'realtime_disconnects_total', 'connections closed, by close code', 'code', () => stats.disconnects)
  mirroredLabelledCounter(registry, 'realtime_errors_total', 'error frames sent, by error code', 'code', () => stats.errors)
  mirroredLabelledCounter(registry, 'realtime_rate_limited_total', 'requests refused by a limit', 'scope', () => Object.entries(stats.rateLimited))
  mirroredLabelledCounter(registry, 'realtime_recoveries_total', 'subscribes with since', 'result', () => Object.entries(stats.recoveries))
  const publishDuration = new Histogram({
    name: 'realtime_publish_duration_seconds',
    help: "from accepting a publish to the broker's confirmation",
    buckets: LATENCY_BUCKETS,
    registers: [registry]
  })
  const deliveryLag = new Histogram({
    name: 'realtime_delivery_lag_seconds',
    help: "from a publication's ts to its local fan-out",
    buckets: LATENCY_BUCKETS,
    registers: [registry]
  })
  stats.observePublishDuration = seconds => publishDuration.observe(seconds)
  stats.observeDeliveryLag = seconds => deliveryLag.observe(Math.max(0, seconds))
}

export interface MetricsOptions {
  /** Where GET /metrics is mounted (the realtime routes' prefix). */
  prefix?: string
}

async function metrics (app: FastifyInstance, options: MetricsOptions): Promise<void> {
  const registry = new Registry()
  app.decorate('realtimeMetrics', registry)
  realtimeMetrics(registry, app.realtime)
  await app.register(fastifyMetrics, {
    // Our own decorator name and route, so a host's fastify-metrics (decorated `metrics`) stays intact.
    name: 'realtimeHttpMetrics',
    endpoint: null,
    defaultMetrics: { enabled: true, register: registry },
    routeMetrics: {
      // The summary runs a t-digest on every request (~4 µs of ~24 µs per publish, BENCHMARKS.md);
      // the histogram gives the same quantiles through histogram_quantile().
      enabled: { histogram: true, summary: false },
      overrides: { histogram: { registers: [registry] }, summary: { registers: [registry] } }
    }
  })
  app.get(`${options.prefix ?? ''}/metrics`, { logLevel: 'warn' }, async (_request, reply) => {
    reply.type(registry.contentType)
    return registry.metrics()
  })
}

export default fp(metrics, { fastify: '5.x', name: 'fastify-realtime-metrics', dependencies: ['fastify-realtime-broadcast'] })
