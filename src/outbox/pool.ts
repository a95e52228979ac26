// The pool the consumer runs on when the node has OUTBOX_URL (a host may hand over its own pg.Pool as
// `outboxPool` instead). `pg` is an optional dependency: imported here only, when the consumer is set
// up, so installs that never use the outbox need not have it.
import { importOptional, MissingPackageError } from '../core/optional-package.js'
import type { PoolLike } from './pg-like.js'

/** The consumer holds one connection for LISTEN and uses one per batch; one more serves scrapes. */
const POOL_SIZE = 3
/** A PostgreSQL that does not answer is an outage after this long, not a hang. */
const CONNECT_TIMEOUT_MS = 5000

/**
 * `nodeId` names the node in PostgreSQL's application_name (`fastify-realtime outbox <node>`), so that
 * pg_stat_activity, joined with pg_locks, shows which node consumes now (docs/outbox.md).
 */
export async function createOutboxPool (url: string, nodeId: string): Promise<PoolLike> {
  const pg = await importOptional('pg', async () => await import('pg'))
  if (pg === undefined) throw new MissingPackageError('pg', 'OUTBOX_URL is set')
  // pg is CommonJS: under NodeNext its classes are on the default export.
  const pool = new pg.default.Pool({
    connectionString: url,
    max: POOL_SIZE,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    application_name: `fastify-realtime outbox ${nodeId}`,
    keepAlive: true
  })
  // An idle connection that breaks (PostgreSQL restarted) is reported here; without a listener pg
  // would throw it out of the process. Nothing to do: the consumer notices (and logs) the outage on
  // its own next round, and the pool opens new connections.
  pool.on('error', () => {})
  return pool as unknown as PoolLike
}
