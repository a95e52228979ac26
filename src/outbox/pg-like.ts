// The parts of `pg` the outbox uses, by their shape. `pg` is an optional dependency, imported only when
// the consumer is built (pool.ts); these types keep every declaration file of the package free of it,
// so an install without `pg` still type-checks, and a host's own pg.Pool or pg.PoolClient fits them.

/** What a query resolves with: pg's QueryResult has these (and more). */
export interface QueryResultLike {
  rows: any[]
  rowCount: number | null
}

/** Anything that runs a parameterised query: a pg.Client, a pg.PoolClient, a pg.Pool. */
export interface Queryable {
  query: (text: string, values?: any[]) => Promise<QueryResultLike>
}

/** A client checked out of a pool: released when done, destroyed (`release(err)`) when broken. */
export interface PoolClientLike extends Queryable {
  release: (err?: Error | boolean) => void
  on: (event: 'error' | 'notification' | 'end', listener: (arg: any) => void) => unknown
  removeListener: (event: 'error' | 'notification' | 'end', listener: (arg: any) => void) => unknown
}

/** A pg.Pool: the host's (`outboxPool`, never ended by us) or ours (OUTBOX_URL). */
export interface PoolLike extends Queryable {
  connect: () => Promise<PoolClientLike>
  end: () => Promise<void>
  on: (event: 'error', listener: (err: Error) => void) => unknown
}
