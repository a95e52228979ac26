// The outbox consumer of one node (docs/outbox.md): rounds of batches (batch.ts), woken by NOTIFY
// (listener.ts) and by a poll every OUTBOX_POLL_INTERVAL ms, until the table is empty; PostgreSQL out
// of reach is an outage it waits out with backoff, never a reason to stop the node or to fail its start.
import type { Logger } from '../core/node.js'
import type { ThrottledLog } from '../mqtt/throttled-log.js'
import { consumeBatch, PublishFailedError, type PublishRow } from './batch.js'
import { OutboxListener } from './listener.js'
import type { OutboxNames } from './names.js'
import type { PoolLike } from './pg-like.js'
import { ensureSchema } from './schema.js'
import { Wakeup } from './wakeup.js'

/** The first retry after a failure, doubled per failure up to MAX_BACKOFF_MS. */
const BASE_BACKOFF_MS = 200
const MAX_BACKOFF_MS = 5000
/** A scrape never waits longer than this for the backlog query: it reports the last figures instead. */
const BACKLOG_TIMEOUT_MS = 1000
/** How long close() lets a batch in progress finish (its publishes are idempotent if it does not). */
const CLOSE_TIMEOUT_MS = 5000

export interface OutboxConsumerSettings {
  names: OutboxNames
  /** OUTBOX_POLL_INTERVAL */
  pollInterval: number
  /** OUTBOX_BATCH */
  batch: number
}

/** The table's backlog as last measured: realtime_outbox_backlog_rows, realtime_outbox_oldest_age_seconds. */
export interface OutboxBacklog {
  rows: number
  oldestAgeSeconds: number
}

export class OutboxConsumer {
  /** Rows published, and rows moved to <table>_dead, by this node (counted once committed). */
  readonly counts = { published: 0, deadLettered: 0 }
  /** PostgreSQL answered this node's last round: /health/ready's `outbox`, realtime_outbox_up. */
  available = false
  private lastBacklog: OutboxBacklog = { rows: 0, oldestAgeSeconds: 0 }
  private measuring?: Promise<OutboxBacklog>
  private readonly wakeup = new Wakeup()
  private readonly listener: OutboxListener
  private schemaReady = false
  private failures = 0
  private closed = false
  private loop?: Promise<void>

  constructor (
    private readonly pool: PoolLike,
    private readonly settings: OutboxConsumerSettings,
    private readonly publishRow: PublishRow,
    private readonly log: Logger,
    private readonly warnings: ThrottledLog
  ) {
    this.listener = new OutboxListener(pool, settings.names.channel, () => this.wakeup.signal())
  }

  /** Starts consuming; does not wait for PostgreSQL, which may well be down now. */
  start (): void {
    this.loop ??= this.run()
  }

  /** Stops after the batch in progress (waiting for it at most CLOSE_TIMEOUT_MS) and gives the LISTEN connection back. */
  async close (): Promise<void> {
    this.closed = true
    this.wakeup.close()
    if (this.loop !== undefined) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([this.loop, new Promise(resolve => { timer = setTimeout(resolve, CLOSE_TIMEOUT_MS) })])
      clearTimeout(timer)
    }
    this.listener.drop()
  }

  /**
   * Rows waiting and the oldest one's age, measured now (callers at the same time share one query), or
   * as last measured when PostgreSQL does not answer within BACKLOG_TIMEOUT_MS.
   */
  async backlog (): Promise<OutboxBacklog> {
    this.measuring ??= this.measureBacklog().finally(() => { this.measuring = undefined })
    return await this.measuring
  }

  private async measureBacklog (): Promise<OutboxBacklog> {
    let timer: NodeJS.Timeout | undefined
    const measured = this.pool.query(`SELECT count(*)::float8 AS rows, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age FROM ${this.settings.names.table}`)
      .then(({ rows: [row] }) => { this.lastBacklog = { rows: row.rows, oldestAgeSeconds: Math.max(0, row.age) } })
    // A late answer still updates the figures; the scrape does not wait for it.
    measured.catch(() => {})
    await Promise.race([measured, new Promise(resolve => { timer = setTimeout(resolve, BACKLOG_TIMEOUT_MS) })]).catch(() => {})
    clearTimeout(timer)
    return this.lastBacklog
  }

  private async run (): Promise<void> {
    while (!this.closed) {
      const pause = await this.round()
      if (pause === undefined) continue
      await this.wakeup.wait(pause.ms, pause.wake)
    }
  }

  /** One batch; then how long to pause (undefined: take the next batch now) and whether a NOTIFY ends the pause. */
  private async round (): Promise<{ ms: number, wake: boolean } | undefined> {
    const { names, batch, pollInterval } = this.settings
    try {
      await this.prepare()
      const client = await this.pool.connect()
      // A connection that breaks between two queries reports it here, not as an uncaught error.
      const ignore = (): void => {}
      client.on('error', ignore)
      let result
      try {
        result = await consumeBatch(client, names, batch, this.publishRow)
      } catch (err) {
        // A broken connection is destroyed (its error listener stays: it may still report its end).
        if (err instanceof PublishFailedError) client.removeListener('error', ignore)
        client.release(err instanceof PublishFailedError ? undefined : err as Error)
        throw err
      }
      client.removeListener('error', ignore)
      client.release()
      this.reachable()
      this.failures = 0
      // Another node consumes now: sleep a full poll interval rather than be woken by every NOTIFY; it
      // takes over within one interval if that node goes away.
      if (result.locked) return { ms: pollInterval, wake: false }
      this.counts.published += result.published
      this.counts.deadLettered += result.dead.length
      for (const dead of result.dead) {
        this.warnings.warn('outbox-dead', { table: names.table, id: dead.id, topic: dead.topic, reason: dead.reason }, `outbox row moved to ${names.dead}`)
      }
      return result.rows === batch ? undefined : { ms: pollInterval, wake: true }
    } catch (err) {
      this.failed(err)
      return { ms: this.backoff(), wake: false }
    }
  }

  /** The table (once), then the LISTEN connection (again whenever it broke). */
  private async prepare (): Promise<void> {
    if (!this.schemaReady) {
      const client = await this.pool.connect()
      try {
        await ensureSchema(client, this.settings.names)
      } catch (err) {
        client.release(err as Error)
        throw err
      }
      client.release()
      this.schemaReady = true
    }
    // Rows committed while nobody listened are found by the batch that follows.
    await this.listener.listen()
  }

  private reachable (): void {
    if (this.available) return
    this.available = true
    this.log.info({ table: this.settings.names.table }, 'outbox: PostgreSQL reachable, consuming')
  }

  private failed (err: unknown): void {
    this.failures++
    if (err instanceof PublishFailedError) {
      // PostgreSQL answered: only the publication waits (the broker is down, typically).
      this.warnings.warn('outbox-publish', { err: err.cause, table: this.settings.names.table, id: err.row.id }, 'outbox: a publish failed; the batch is rolled back and taken again')
      return
    }
    // The table may be what went missing: check it again on the next round.
    this.schemaReady = false
    this.listener.drop()
    if (this.available) this.log.warn({ err, table: this.settings.names.table }, 'outbox: PostgreSQL unavailable; retrying with backoff')
    else this.warnings.warn('outbox-unavailable', { err, table: this.settings.names.table }, 'outbox: PostgreSQL unavailable; retrying with backoff')
    this.available = false
  }

  private backoff (): number {
    const ms = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** Math.min(this.failures - 1, 10))
    // Jitter, so that nodes which lost PostgreSQL together do not come back in step.
    return Math.round(ms * (0.8 + Math.random() * 0.4))
  }
}
