// The PostgreSQL transactional outbox as a Fastify plugin (docs/outbox.md): builds this node's
// OutboxConsumer on OUTBOX_URL (a pool of ours, ended when the app closes) or on the host's pg.Pool
// (`outboxPool`, never ended by us), starts it when the app is ready, decorates `realtimeOutbox`
// (readiness reports it), adds the realtime_outbox_* metrics to the app's realtime registry, and stops
// it when the app closes. The umbrella plugin registers it when either is given. The `pg` package is
// an optional dependency: OUTBOX_URL without it fails the registration with one line saying so.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { configWith, type Config } from '../src/config.js'
import { ThrottledLog } from '../src/mqtt/throttled-log.js'
import { OutboxConsumer } from '../src/outbox/consumer.js'
import { outboxMetrics } from '../src/outbox/metrics.js'
import { outboxNames } from '../src/outbox/names.js'
import type { PoolLike } from '../src/outbox/pg-like.js'
import { createOutboxPool } from '../src/outbox/pool.js'
import { rowPublisher } from '../src/outbox/publish-row.js'
import { kRealtimeNode } from './node.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** This node's outbox consumer, when one is registered: `available`, `counts`, `backlog()`. */
    realtimeOutbox: OutboxConsumer
  }
}

/** A pg.Pool (or anything shaped like one): the consumer's connections, the host's to end. */
export type OutboxPool = PoolLike

type OutboxFields = Pick<Config, 'outboxUrl' | 'outboxTable' | 'outboxPollInterval' | 'outboxBatch'>

export interface OutboxPluginOptions extends Partial<OutboxFields> {
  /** The umbrella's config; a host registering the plugin itself leaves it out (the node's is used). */
  config?: Config
  /** A pg.Pool of the host's to consume on instead of OUTBOX_URL: never ended by the plugin. */
  pool?: OutboxPool
}

async function outbox (app: FastifyInstance, options: OutboxPluginOptions): Promise<void> {
  if (app.hasDecorator('realtimeOutbox')) throw new Error('fastify-realtime: the outbox is registered twice in this app')
  const node = app[kRealtimeNode]
  const { config: given, pool: handed, ...fields } = options
  const config = configWith({ ...(given ?? node.config), ...fields })
  if (config.outboxUrl === undefined && handed === undefined) throw new Error('fastify-realtime: the outbox needs outboxUrl (OUTBOX_URL) or an outboxPool')
  const names = outboxNames(config.outboxTable)
  // Nothing connects here: PostgreSQL out of reach at start is an outage the consumer waits out.
  const pool = handed ?? await createOutboxPool(config.outboxUrl as string, node.id)
  const consumer = new OutboxConsumer(pool, { names, pollInterval: config.outboxPollInterval, batch: config.outboxBatch }, rowPublisher(node), app.log, new ThrottledLog(app.log))
  app.decorate('realtimeOutbox', consumer)
  if (app.hasDecorator('realtimeMetrics')) outboxMetrics(app.realtimeMetrics, consumer)
  app.addHook('onReady', async () => { consumer.start() })
  // Registered after the node: onClose hooks run last-added first, so the consumer stops before the node.
  app.addHook('onClose', async () => {
    await consumer.close()
    if (handed === undefined) await pool.end()
  })
}

export default fp(outbox, { fastify: '5.x', name: 'fastify-realtime-outbox', dependencies: ['fastify-realtime-node'] })
