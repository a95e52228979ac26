// Token expiry on a live connection: at `identity.expiresAt` the connection closes with 4001, unless a
// `refresh` replaced the identity first (the dispatcher re-arms the timer then).
import type { Connection } from '../connection.js'
import { CloseCode } from '../protocol.js'

/** setTimeout's largest delay; longer ones fire at once, so far expiries are reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** (Re)starts the connection's expiry timer from its current identity; none when it never expires. */
export function armExpiry (connection: Connection): void {
  disarmExpiry(connection)
  const expiresAt = connection.identity.expiresAt
  if (expiresAt === null) return
  const delay = Math.min(Math.max(expiresAt - Date.now(), 0), MAX_TIMER_MS)
  connection.expiryTimer = setTimeout(() => {
    connection.expiryTimer = undefined
    if (!connection.open) return
    if (Date.now() < expiresAt) return armExpiry(connection)
    connection.close(CloseCode.tokenExpired, 'token expired')
  }, delay)
  // The socket keeps the process alive while it matters; the timer alone must not.
  connection.expiryTimer.unref()
}

/** Stops the timer: the connection is gone (a peer close does not go through Connection.close). */
export function disarmExpiry (connection: Connection): void {
  clearTimeout(connection.expiryTimer)
  connection.expiryTimer = undefined
}
