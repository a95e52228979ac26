// Websocket pings for every connection on one timer (not one per connection), and termination of the
// connections that leave a ping unanswered for longer than the timeout (docs/protocol.md §2). Each
// connection remembers its own oldest unanswered ping (Connection.ping/markAlive): a field, because
// every frame a client sends resets it.
//
// The pings of one interval are spread over it, a slice every SLICE_MS, instead of all at once: a
// ping and its pong cost about twice a delivery, so pinging 100k connections at once took seconds of
// CPU and delayed every publication that arrived meanwhile (it set the p99 of the 100k broadcast,
// BENCHMARKS.md). Each connection is still pinged once per interval.
import type { Connection } from './connection.js'

/** About this often a slice of the connections is pinged (an interval shorter than this is one slice). */
const SLICE_MS = 100

export class Heartbeat {
  private pinger?: NodeJS.Timeout
  private readonly reapers = new Set<NodeJS.Timeout>()
  private readonly slices: number
  /** Where this interval's pinging stands: the Set's live iterator (deleted entries are skipped). */
  private round?: Iterator<Connection>
  private slice = 0
  private perSlice = 0

  constructor (
    private readonly connections: ReadonlySet<Connection>,
    private readonly intervalMs: number,
    private readonly timeoutMs: number
  ) {
    this.slices = Math.max(1, Math.round(intervalMs / SLICE_MS))
  }

  start (): void {
    // The first walk starts one interval after the start, as when all were pinged at once: a
    // connection of the first moments is not pinged within its first interval.
    this.slice = this.slices === 1 ? 0 : 1
    this.pinger = setInterval(() => this.pingSlice(), this.intervalMs / this.slices)
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

  /**
   * Pings the next slice: an interval's first slice starts a walk over the connections, each slice
   * takes its share of the count at that start, and the walk ends with the Set (connections that came
   * during it are in it; ones that left are skipped). What was pinged is checked timeout ms later.
   */
  private pingSlice (): void {
    if (this.slice === 0) {
      this.round = this.connections.values()
      this.perSlice = Math.ceil(this.connections.size / this.slices)
    }
    this.slice = (this.slice + 1) % this.slices
    const pinged: Connection[] = []
    const now = Date.now()
    while (this.round !== undefined && pinged.length < this.perSlice) {
      const next = this.round.next()
      if (next.done === true) {
        this.round = undefined
        break
      }
      const connection = next.value
      if (connection.open) {
        connection.ping(now)
        pinged.push(connection)
      }
    }
    if (pinged.length === 0) return
    const reaper = setTimeout(() => {
      this.reapers.delete(reaper)
      this.reap(pinged)
    }, this.timeoutMs)
    reaper.unref()
    this.reapers.add(reaper)
  }

  /** Terminates those of `pinged` still connected whose oldest unanswered ping is timeout ms old. */
  private reap (pinged: Connection[]): void {
    const deadline = Date.now() - this.timeoutMs
    for (const connection of pinged) {
      const since = connection.unansweredPingSince
      if (since !== 0 && since <= deadline && this.connections.has(connection)) connection.terminate('no pong within HEARTBEAT_TIMEOUT')
    }
  }
}
