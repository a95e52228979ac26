// Websocket pings for every connection on one timer (not one per connection), and termination of the
// connections that leave a ping unanswered for longer than the timeout (docs/protocol.md §2). Each
// connection remembers its own oldest unanswered ping (Connection.ping/markAlive): a field, because
// every frame a client sends resets it.
import type { Connection } from './connection.js'

export class Heartbeat {
  private pinger?: NodeJS.Timeout
  private readonly reapers = new Set<NodeJS.Timeout>()

  constructor (
    private readonly connections: Iterable<Connection>,
    private readonly intervalMs: number,
    private readonly timeoutMs: number
  ) {}

  start (): void {
    this.pinger = setInterval(() => this.ping(), this.intervalMs)
    this.pinger.unref()
  }

  stop (): void {
    clearInterval(this.pinger)
    for (const reaper of this.reapers) clearTimeout(reaper)
    this.reapers.clear()
  }

  /** Any sign of life (a pong, any frame) answers the outstanding ping. */
  static alive (connection: Connection): void {
    connection.markAlive()
  }

  private ping (): void {
    const now = Date.now()
    for (const connection of this.connections) {
      if (connection.open) connection.ping(now)
    }
    const reaper = setTimeout(() => {
      this.reapers.delete(reaper)
      this.reap()
    }, this.timeoutMs)
    reaper.unref()
    this.reapers.add(reaper)
  }

  private reap (): void {
    const deadline = Date.now() - this.timeoutMs
    for (const connection of this.connections) {
      const since = connection.unansweredPingSince
      if (since !== 0 && since <= deadline) connection.terminate('no pong within HEARTBEAT_TIMEOUT')
    }
  }
}
