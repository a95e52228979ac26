// Token expiry on a live connection: at `identity.expiresAt` the connection closes with 4001, unless a
// `refresh` replaced the identity first (the dispatcher re-arms it then). The timers are kept here,
// not on the connection: arming and disarming are the only writers.
//
// Connections that expire at the same moment share one timer. A JWT's `exp` is in whole seconds, so
// every connection whose token expires in the same second is in one bucket: one timer per second of
// expiry instead of one per connection, which cost a Timeout and, for each distinct delay, a timer
// list in Node's timer heap on every connect (BENCHMARKS.md). Which bucket a connection is in is
// written on the connection (Connection.expiryArmedAt, written only here), not in a WeakMap keyed by
// connections: a WeakMap entry cost a runtime call per connect and an ephemeron for the collector.
import type { Connection } from '../connection.js'
import { ServerClose } from '../protocol.js'

/** setTimeout's largest delay; longer ones fire at once, so far expiries are reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1

interface Bucket {
  timer: NodeJS.Timeout
  connections: Set<Connection>
}

/** expiresAt (ms) -> the connections armed to close then. */
const buckets = new Map<number, Bucket>()

/** (Re)starts the connection's expiry from its current identity; none when it never expires. */
export function armExpiry (connection: Connection): void {
  disarmExpiry(connection)
  const expiresAt = connection.identity.expiresAt
  // A refresh that completes after the socket closed must not leave a timer behind.
  if (expiresAt === null || !connection.open) return
  let bucket = buckets.get(expiresAt)
  if (bucket === undefined) {
    bucket = { timer: startTimer(expiresAt), connections: new Set() }
    buckets.set(expiresAt, bucket)
  }
  bucket.connections.add(connection)
  connection.expiryArmedAt = expiresAt
}

/** Stops the connection's expiry: the connection is gone (a peer close does not go through Connection.close). */
export function disarmExpiry (connection: Connection): void {
  const expiresAt = connection.expiryArmedAt
  if (expiresAt === undefined) return
  connection.expiryArmedAt = undefined
  const bucket = buckets.get(expiresAt)
  if (bucket === undefined) return
  bucket.connections.delete(connection)
  if (bucket.connections.size === 0) {
    clearTimeout(bucket.timer)
    buckets.delete(expiresAt)
  }
}

function startTimer (expiresAt: number): NodeJS.Timeout {
  const delay = Math.min(Math.max(expiresAt - Date.now(), 0), MAX_TIMER_MS)
  const timer = setTimeout(() => expire(expiresAt), delay)
  // The sockets keep the process alive while they matter; the timer alone must not.
  timer.unref()
  return timer
}

function expire (expiresAt: number): void {
  const bucket = buckets.get(expiresAt)
  if (bucket === undefined) return
  // Reached in steps (an expiry beyond MAX_TIMER_MS), or early: wait on.
  if (Date.now() < expiresAt) {
    bucket.timer = startTimer(expiresAt)
    return
  }
  buckets.delete(expiresAt)
  for (const connection of bucket.connections) {
    connection.expiryArmedAt = undefined
    if (connection.open) connection.close(ServerClose.tokenExpired)
  }
}
