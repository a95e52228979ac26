// The dedicated connection that LISTENs on the outbox's channel: one client held out of the pool for
// as long as it works. Its notifications wake the consumer; when it breaks (PostgreSQL restarted, the
// network gone) it is destroyed and the consumer makes a new one on its next round, with the poll
// covering the gap. Behind a pooler in transaction mode (PgBouncer) LISTEN does not work: the poll alone
// then finds the rows, every OUTBOX_POLL_INTERVAL.
import type { PoolClientLike, PoolLike } from './pg-like.js'

export class OutboxListener {
  private client?: PoolClientLike
  private broken?: Error

  constructor (private readonly pool: PoolLike, private readonly channel: string, private readonly onNotify: () => void) {}

  /** Listening now; false after an error, until listen() succeeds again. */
  get listening (): boolean {
    return this.client !== undefined && this.broken === undefined
  }

  /** Checks out a client and LISTENs, unless one listens already. Rejects when PostgreSQL is unreachable. */
  async listen (): Promise<void> {
    if (this.listening) return
    this.drop()
    const client = await this.pool.connect()
    this.client = client
    this.broken = undefined
    client.on('notification', this.notified)
    // Without an 'error' listener a broken connection would throw out of the process.
    client.on('error', this.failed)
    client.on('end', this.ended)
    try {
      await client.query(`LISTEN "${this.channel}"`)
    } catch (err) {
      this.failed(err as Error)
      throw err
    }
  }

  /** Gives the client back: destroyed (release(err)) so that the pool never hands out a LISTENing connection. */
  drop (): void {
    const client = this.client
    if (client === undefined) return
    this.client = undefined
    client.removeListener('notification', this.notified)
    client.removeListener('end', this.ended)
    // The error listener stays: a destroyed connection may still report its socket's end.
    client.release(this.broken ?? new Error('outbox listener closed'))
  }

  private readonly notified = (): void => { this.onNotify() }
  private readonly failed = (err: Error): void => { this.broken ??= err }
  private readonly ended = (): void => { this.broken ??= new Error('the LISTEN connection ended') }
}
