// Coalesced socket writes. One `write` system call per frame is what a fan-out costs (BENCHMARKS.md:
// 88-93% of the busy time), so a connection that has several frames to send (a Redis read that carries
// many publications, a broadcast to several topics, a client on many busy topics, a replay) corks its
// TCP socket and uncorks it once: Node then hands everything written meanwhile, ours and ws' own
// frames alike, in call order, to the kernel in one `writev`.
//
// With WRITE_DELAY=0 the first frame of a turn is written as it comes and the cork goes on at the
// second: a corked write costs Node a buffered entry replayed at the uncork (about 800 instructions,
// BENCHMARKS.md), which a burst (one frame per connection per turn: nothing to coalesce) would pay on
// every delivery. A batch of N frames is then 2 writes: the first frame, and the other N - 1 in one
// writev. With WRITE_DELAY > 0 the cork goes on at the first frame, as the delay is the point.
//
// When the cork comes off: after the current event-loop turn (WRITE_DELAY=0), or WRITE_DELAY ms after
// the first frame was held. This module keeps the list of connections whose turn ends: one
// setImmediate for all of them, so the poll phase's I/O callbacks (every HTTP request, every Redis
// read that arrived together) first write what they have, and nothing waits for the next I/O. The same
// setImmediate ends the turn's number, which tells a connection's first frame of a turn from the next.

/** A connection that holds its socket's writes (ws-connection.ts). */
export interface HeldWrites {
  /** Lets what it holds go to the kernel now (uncorks); nothing when it holds nothing. */
  flushWrites: () => void
}

/** The connections to flush at the end of this turn, and the list being flushed (reused, not reallocated). */
let dueThisTurn: HeldWrites[] = []
let flushing: HeldWrites[] = []
let flushScheduled = false
/** Advanced by every flush: a connection that wrote in turn N and sends again in turn N holds. */
let turn = 1

/**
 * The number of the current turn, made sure to end (by the flush's setImmediate): what a connection
 * compares with the turn of its last plain write, to write a turn's first frame as it comes.
 */
export function writeTurn (): number {
  if (!flushScheduled) scheduleFlush()
  return turn
}

/**
 * Flushes `held` once this event-loop turn's I/O callbacks are done. The caller holds (has corked) at
 * most once per turn; a connection that flushed early (over its send buffer limit) and holds again may
 * be listed twice, and its second flush finds nothing held.
 */
export function flushAfterThisTurn (held: HeldWrites): void {
  dueThisTurn.push(held)
  if (!flushScheduled) scheduleFlush()
}

function scheduleFlush (): void {
  flushScheduled = true
  setImmediate(flushDue)
}

function flushDue (): void {
  // Swap the lists first: a connection that holds again during a flush goes on the next turn's list,
  // not on the one being read. Both keep their capacity: a fan-out to 10k connections grows no array.
  const due = dueThisTurn
  dueThisTurn = flushing
  flushing = due
  flushScheduled = false
  turn++
  for (let i = 0; i < due.length; i++) due[i].flushWrites()
  due.length = 0
}

/** WRITE_DELAY's timer callback (one timer per holding connection, set with the connection as argument). */
export function flushHeldWrites (held: HeldWrites): void {
  held.flushWrites()
}
