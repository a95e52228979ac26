// Creates what the outbox needs when it is missing: the table with exactly the contract's columns, its
// dead-letter table, and the statement-level trigger that calls pg_notify on insert (LISTEN/NOTIFY wakes
// the consumers; the poll is only the safety net). Nothing is created or altered when it all exists,
// so a database user without CREATE rights works against tables made by a migration (docs/outbox.md).
import { LOCK_NAMESPACE, type OutboxNames } from './names.js'
import type { PoolClientLike } from './pg-like.js'

/** The contract's columns (docs/outbox.md): other programs insert into them, keep them exact. */
export function createTableSql (names: OutboxNames): string {
  return `CREATE TABLE IF NOT EXISTS ${names.table} (
  id bigserial PRIMARY KEY,
  topic text NOT NULL,
  data jsonb NOT NULL,
  idempotency_key text,
  created_at timestamptz NOT NULL DEFAULT now()
)`
}

/** A row the consumer could not publish, as it was, with why and when. */
export function createDeadTableSql (names: OutboxNames): string {
  return `CREATE TABLE IF NOT EXISTS ${names.dead} (
  id bigint PRIMARY KEY,
  topic text NOT NULL,
  data jsonb NOT NULL,
  idempotency_key text,
  created_at timestamptz NOT NULL,
  reason text NOT NULL,
  dead_at timestamptz NOT NULL DEFAULT now()
)`
}

/**
 * One notification per inserting statement (not per row): identical notifications of one transaction
 * are folded into one by PostgreSQL anyway, and it is sent at commit, so a rolled-back insert wakes no one.
 */
export function createTriggerSql (names: OutboxNames): string[] {
  return [
    `CREATE OR REPLACE FUNCTION ${names.notifyFunction}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('${names.channel}', '');
  RETURN NULL;
END
$$`,
    `CREATE TRIGGER ${names.trigger} AFTER INSERT ON ${names.table} FOR EACH STATEMENT EXECUTE FUNCTION ${names.notifyFunction}()`
  ]
}

/** Whether the table, the dead-letter table and the trigger all exist: then no DDL runs at all. */
async function complete (client: PoolClientLike, names: OutboxNames): Promise<boolean> {
  const { rows } = await client.query(`SELECT to_regclass($1) IS NOT NULL AS "table", to_regclass($2) IS NOT NULL AS dead,
    EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $3) AS "trigger"`, [names.table, names.dead, names.trigger])
  return rows[0].table === true && rows[0].dead === true && rows[0].trigger === true
}

/**
 * Creates whatever is missing, in one transaction under an advisory lock: nodes starting together
 * would otherwise race on CREATE TABLE IF NOT EXISTS (a unique violation in pg_type) or create the
 * trigger twice.
 */
export async function ensureSchema (client: PoolClientLike, names: OutboxNames): Promise<void> {
  if (await complete(client, names)) return
  await client.query('BEGIN')
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))', [LOCK_NAMESPACE, names.schemaLock])
    await client.query(createTableSql(names))
    await client.query(createDeadTableSql(names))
    const { rows } = await client.query('SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2', [names.table, names.trigger])
    if (rows.length === 0) for (const statement of createTriggerSql(names)) await client.query(statement)
    await client.query('COMMIT')
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  }
}
