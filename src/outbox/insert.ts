// app.realtime.outbox(client, topic, data, { idempotencyKey }): the host's side of the outbox. The row
// goes in through the caller's own client, so it commits or rolls back with the caller's transaction;
// the consumer (consumer.ts, on whichever node runs one) publishes it once committed. Needs no `pg` of
// ours and no OUTBOX_URL on this node: only the table (OUTBOX_TABLE), which a consumer or a migration
// created (docs/outbox.md).
import { ErrorCode, ProtocolError } from '../core/protocol.js'
import type { Queryable } from './pg-like.js'

export interface OutboxOptions {
  /**
   * The row's idempotency_key: a publication with the same key on the same topic within 5 minutes is
   * published once. Without one the consumer derives a key from the row's id.
   */
  idempotencyKey?: string
}

/** The row inserted: its id (a bigint, as text, as `pg` returns bigints). */
export interface OutboxRow {
  id: string
}

export interface OutboxInsertSettings {
  /** The outbox table as written in SQL (names.ts). */
  table: string
  /** MAX_PAYLOAD: a row the consumer would have to dead-letter for its size is refused now instead. */
  maxPayload: number
  /** The topic's declared schema, checked now: the caller learns of bad data in its own transaction. */
  checkData: (topic: string, data: unknown) => void
}

export async function insertOutboxRow (client: Queryable, topic: string, data: unknown, options: OutboxOptions, settings: OutboxInsertSettings): Promise<OutboxRow> {
  if (typeof client?.query !== 'function') throw new ProtocolError(ErrorCode.badRequest, 'outbox() needs a client with query(): the pg client of your transaction')
  const { idempotencyKey } = options
  if (idempotencyKey !== undefined && (typeof idempotencyKey !== 'string' || idempotencyKey === '')) {
    throw new ProtocolError(ErrorCode.badRequest, 'idempotencyKey must be a non-empty string')
  }
  settings.checkData(topic, data)
  // Serialised here: pg would turn a JS array into a PostgreSQL array literal, not JSON.
  const json = JSON.stringify(data)
  if (json === undefined) throw new ProtocolError(ErrorCode.badRequest, 'data must be a JSON value')
  if (Buffer.byteLength(json) > settings.maxPayload) throw new ProtocolError(ErrorCode.tooLarge, `data is larger than MAX_PAYLOAD (${settings.maxPayload} bytes)`)
  const { rows } = await client.query(`INSERT INTO ${settings.table} (topic, data, idempotency_key) VALUES ($1, $2::jsonb, $3) RETURNING id::text AS id`,
    [topic, json, idempotencyKey ?? null])
  return { id: rows[0].id }
}
