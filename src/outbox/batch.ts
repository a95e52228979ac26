// One batch, in one transaction (docs/outbox.md, "Exactly once, in order"):
//
//   BEGIN
//   pg_try_advisory_xact_lock: one node at a time consumes the table; the others find it taken and
//     leave (the lock goes with the transaction: a node that dies or is cut off releases it as its
//     session ends, which idle_in_transaction_session_timeout bounds);
//   SELECT the first OUTBOX_BATCH rows by id: committed rows only (READ COMMITTED);
//   publish them, each topic's rows one after another in id order (topics side by side), each with its
//     idempotency key, so that a batch published again after a crash before COMMIT publishes nothing twice;
//   move the refused ones to <table>_dead, DELETE the batch
//   COMMIT, without waiting for the disk (synchronous_commit off, for this transaction only): a
//     PostgreSQL crash that loses the deletion brings the rows back, and their idempotency keys make
//     the retry publish nothing twice, so the flush per batch (most of a batch's time) buys nothing
//
// A publish that fails for a reason that may pass (the broker down, a timeout) rolls the whole batch
// back: it is taken again, in the same order, on the next round.
import { ErrorCode, ProtocolError } from '../core/protocol.js'
import { derivedIdempotencyKey, LOCK_NAMESPACE, type OutboxNames } from './names.js'
import type { PoolClientLike, QueryResultLike } from './pg-like.js'

/**
 * How long PostgreSQL lets a consuming transaction sit idle (publishing, from its point of view) before
 * it ends the session and so releases the lock: a node frozen or cut off mid-batch holds the table at
 * most this long. Well under the 5 minutes idempotency keys last, which bound exactly-once.
 */
export const IDLE_IN_TRANSACTION_MS = 60_000

/** What a publish is refused with for good: the row can never be published, waiting changes nothing. */
const PERMANENT: ReadonlySet<string> = new Set([ErrorCode.badRequest, ErrorCode.tooLarge, ErrorCode.forbidden])

/** A row as the consumer reads it. */
export interface OutboxRecord {
  id: string
  topic: string
  data: unknown
  /** The row's own idempotency_key, else the one derived from its id. */
  idempotencyKey: string
}

/** Publishes one row; throws a ProtocolError `bad_request` or `too_large` when it never can be (it is dead-lettered). */
export type PublishRow = (row: OutboxRecord) => Promise<void>

/** A row's publish failed for a reason that may pass (the broker down): PostgreSQL itself is fine. */
export class PublishFailedError extends Error {
  override readonly name = 'PublishFailedError'

  constructor (readonly row: OutboxRecord, cause: unknown) {
    super(`publishing outbox row ${row.id} (topic ${row.topic}) failed: ${(cause as Error)?.message ?? String(cause)}`, { cause })
  }
}

export interface DeadRow {
  id: string
  topic: string
  reason: string
}

export type BatchResult =
  | { locked: true }
  | { locked: false, rows: number, published: number, dead: DeadRow[] }

export async function consumeBatch (client: PoolClientLike, names: OutboxNames, batchSize: number, publishRow: PublishRow): Promise<BatchResult> {
  // Two round trips per batch besides the publishes: this one, and DELETE with COMMIT. Several
  // statements in one query go as PostgreSQL's simple protocol, which takes no parameters: what is
  // inlined is ours (names.ts: identifiers and fixed text; integers), never a row's content.
  const lock = `pg_try_advisory_xact_lock(hashtext('${LOCK_NAMESPACE}'), hashtext('${names.consumeLock}'))`
  try {
    const [, settings, selected] = await client.query(`BEGIN;
      SELECT ${lock} AS locked, set_config('idle_in_transaction_session_timeout', '${IDLE_IN_TRANSACTION_MS}', true),
        set_config('synchronous_commit', 'off', true);
      SELECT o.id::text AS id, o.topic, o.data, o.idempotency_key FROM ${names.table} o WHERE (SELECT ${lock}) ORDER BY o.id LIMIT ${Math.floor(batchSize)}`) as unknown as QueryResultLike[]
    if (settings.rows[0].locked !== true) {
      await client.query('ROLLBACK')
      return { locked: true }
    }
    const rows = selected.rows
    if (rows.length === 0) {
      await client.query('COMMIT')
      return { locked: false, rows: 0, published: 0, dead: [] }
    }
    const records: OutboxRecord[] = rows.map(row => ({
      id: row.id,
      topic: row.topic,
      data: row.data,
      idempotencyKey: row.idempotency_key ?? derivedIdempotencyKey(names, row.id)
    }))
    const dead = await publishAll(records, publishRow)
    if (dead.length > 0) {
      await client.query(`INSERT INTO ${names.dead} (id, topic, data, idempotency_key, created_at, reason)
        SELECT o.id, o.topic, o.data, o.idempotency_key, o.created_at, d.reason
        FROM ${names.table} o JOIN unnest($1::bigint[], $2::text[]) AS d(id, reason) ON o.id = d.id
        ON CONFLICT (id) DO NOTHING`, [dead.map(row => row.id), dead.map(row => row.reason)])
    }
    // The ids came from PostgreSQL as bigint text (`::text`): digits only, checked all the same.
    const ids = records.map(row => row.id)
    if (!ids.every(id => /^\d+$/.test(id))) throw new Error('an outbox id is not an integer')
    await client.query(`DELETE FROM ${names.table} WHERE id = ANY('{${ids.join(',')}}'::bigint[]); COMMIT`)
    return { locked: false, rows: records.length, published: records.length - dead.length, dead }
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  }
}

/**
 * Every topic's rows in id order, one after another; the topics side by side. Returns the refused
 * rows; throws the first other failure once every topic has stopped (none is left publishing while the
 * batch is rolled back and taken again).
 */
async function publishAll (records: OutboxRecord[], publishRow: PublishRow): Promise<DeadRow[]> {
  const byTopic = new Map<string, OutboxRecord[]>()
  for (const record of records) {
    const rows = byTopic.get(record.topic)
    if (rows === undefined) byTopic.set(record.topic, [record])
    else rows.push(record)
  }
  const dead: DeadRow[] = []
  const settled = await Promise.allSettled([...byTopic.values()].map(async rows => {
    for (const row of rows) {
      try {
        await publishRow(row)
      } catch (err) {
        if (!(err instanceof ProtocolError) || !PERMANENT.has(err.code)) throw new PublishFailedError(row, err)
        dead.push({ id: row.id, topic: row.topic, reason: err.message })
      }
    }
  }))
  const failed = settled.find(result => result.status === 'rejected')
  if (failed !== undefined) throw (failed as PromiseRejectedResult).reason
  return dead
}
