// realtime_outbox_*: the consumer's counts, copied at scrape time like the other realtime_* metrics,
// and the table's backlog, measured at scrape time (one count over the table: it is kept near empty).
// With WORKERS > 1 one scrape aggregates every worker's registry (src/workers/cluster-metrics.ts): the
// counters add up, but the backlog is one table's, the same figure in each worker, so it is their
// maximum, not their sum; and `up` is the lowest, 0 when any worker's consumer lost PostgreSQL.
import { Counter, Gauge, type Registry } from 'prom-client'
import type { OutboxConsumer } from './consumer.js'

export function outboxMetrics (registry: Registry, consumer: OutboxConsumer): void {
  registry.registerMetric(new Gauge({
    name: 'realtime_outbox_up',
    help: "1 when this node's outbox consumer reached PostgreSQL on its last round",
    registers: [],
    aggregator: 'min',
    collect () { this.set(consumer.available ? 1 : 0) }
  }))
  registry.registerMetric(new Counter({
    name: 'realtime_outbox_published_total',
    help: 'outbox rows this node published (and deleted)',
    registers: [],
    collect () { this.reset(); this.inc(consumer.counts.published) }
  }))
  registry.registerMetric(new Counter({
    name: 'realtime_outbox_dead_lettered_total',
    help: 'outbox rows this node moved to <table>_dead: invalid topic, data refused by the topic schema, too large',
    registers: [],
    collect () { this.reset(); this.inc(consumer.counts.deadLettered) }
  }))
  // Both gauges read one query per scrape: consumer.backlog() shares the measurement in progress.
  registry.registerMetric(new Gauge({
    name: 'realtime_outbox_backlog_rows',
    help: 'rows in the outbox table waiting to be published (the same on every node)',
    registers: [],
    aggregator: 'max',
    async collect () { this.set((await consumer.backlog()).rows) }
  }))
  registry.registerMetric(new Gauge({
    name: 'realtime_outbox_oldest_age_seconds',
    help: 'age of the oldest row in the outbox table, 0 when it is empty',
    registers: [],
    aggregator: 'max',
    async collect () { this.set((await consumer.backlog()).oldestAgeSeconds) }
  }))
}
