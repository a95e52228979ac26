// The names the outbox derives from OUTBOX_TABLE: its dead-letter table, the trigger and the trigger's
// function, the LISTEN/NOTIFY channel and the advisory locks. Every node derives the same ones, which
// is what lets them agree without talking to each other.
//
// OUTBOX_TABLE passed the config's check (letters, digits and _, optionally schema.table), so every
// name here is a plain SQL identifier that needs no quoting. PostgreSQL folds unquoted identifiers to
// lower case; so do we, so that the channel we LISTEN on (a quoted name) is the one the trigger uses.

/** PostgreSQL's identifier limit (NAMEDATALEN - 1): longer names are cut, and `<table>_dead` would collide. */
const MAX_IDENTIFIER = 63
const DEAD_SUFFIX = '_dead'
const NOTIFY_SUFFIX = '_notify'

/** The first key of both advisory locks (pg_try_advisory_xact_lock(int, int)): hashtext() of this. */
export const LOCK_NAMESPACE = 'fastify-realtime outbox'

export interface OutboxNames {
  /** The outbox table, as written in SQL: `realtime_outbox` or `app.realtime_outbox`. */
  table: string
  /** `<table>_dead`: the rows that could not be published, with the reason. */
  dead: string
  /** The trigger function (in the table's schema) that calls pg_notify. */
  notifyFunction: string
  /** The statement-level trigger on the table (trigger names belong to their table: no schema). */
  trigger: string
  /** The LISTEN/NOTIFY channel. */
  channel: string
  /** Second key of the advisory lock taken by the transaction that consumes a batch. */
  consumeLock: string
  /** Second key of the advisory lock that serialises creating the table between nodes starting together. */
  schemaLock: string
}

export function outboxNames (outboxTable: string): OutboxNames {
  const table = outboxTable.toLowerCase()
  const dot = table.indexOf('.')
  const schema = dot === -1 ? '' : table.slice(0, dot + 1)
  const bare = table.slice(dot + 1)
  if (bare.length + DEAD_SUFFIX.length > MAX_IDENTIFIER || bare.length + NOTIFY_SUFFIX.length > MAX_IDENTIFIER) {
    throw new Error(`fastify-realtime: OUTBOX_TABLE "${outboxTable}" is too long: its table name may have at most ${MAX_IDENTIFIER - NOTIFY_SUFFIX.length} characters, ` +
      `so that ${bare}${DEAD_SUFFIX} and ${bare}${NOTIFY_SUFFIX} fit PostgreSQL's ${MAX_IDENTIFIER}`)
  }
  return {
    table,
    dead: `${schema}${bare}${DEAD_SUFFIX}`,
    notifyFunction: `${schema}${bare}${NOTIFY_SUFFIX}`,
    trigger: `${bare}${NOTIFY_SUFFIX}`,
    // A channel is an identifier too: the qualified name when it fits, else the table's own (two
    // schemas' outboxes then share a channel, and a notification merely wakes the other one for nothing).
    channel: table.length <= MAX_IDENTIFIER ? table : bare,
    consumeLock: `consume ${table}`,
    schemaLock: `schema ${table}`
  }
}

/**
 * The idempotency key of a row without one: the table and the row's id. The node scopes keys to the
 * topic, and remembers them for IDEMPOTENCY_TTL_MS (docs/outbox.md, "Exactly once").
 */
export function derivedIdempotencyKey (names: OutboxNames, id: string): string {
  return `outbox:${names.table}:${id}`
}
