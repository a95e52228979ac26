// Token expiry on a live connection: at `identity.expiresAt` the connection closes with 4001, unless a
// `refresh` replaced the identity first (the dispatcher re-arms the timer then). The timers are kept
// here, not on the connection: arming and disarming are the only writers.
import type { Connection } from '../connection.js'
import { ServerClose } from '../protocol.js'

/** setTimeout's largest delay; longer ones fire at once, so far expiries are reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** Each connection's pending expiry; weak, so a connection that is gone takes its entry with it. */
const expiryTimers = new WeakMap<Connection, NodeJS.Timeout>()

/** (Re)starts the connection's expiry timer from its current identity; none when it never expires. */
export function armExpiry (connection: Connection): void {
  disarmExpiry(connection)
  const expiresAt = connection.identity.expiresAt
  // A refresh that completes after the socket closed must not leave a timer behind.
  if (expiresAt === null || !connection.open) return
  const delay = Math.min(Math.max(expiresAt - Date.now(), 0), MAX_TIMER_MS)
  const timer = setTimeout(() => {
    expiryTimers.delete(connection)
    if (!connection.open) return
    if (Date.now() < expiresAt) return armExpiry(connection)
    connection.close(ServerClose.tokenExpired)
  }, delay)
  // The socket keeps the process alive while it matters; the timer alone must not.
  timer.unref()
  expiryTimers.set(connection, timer)
}

/** Stops the timer: the connection is gone (a peer close does not go through Connection.close). */
export function disarmExpiry (connection: Connection): void {
  clearTimeout(expiryTimers.get(connection))
  expiryTimers.delete(connection)
}
