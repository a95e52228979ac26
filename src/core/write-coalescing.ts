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
// read that arrived together) first write what they have, and nothing waits for the next I/O.
//
// A turn, here, runs from the first scheduling of that setImmediate to the flush, and has a number:
// what tells a connection's first frame of a turn from the next. The places frames come from start
// it (startWriteTurn): a fan-out (hub.ts) and a client's frame (node.ts), once per publication or per
// frame received. send() only reads the number: scheduling from send() put setImmediate in its inline
// tree (V8 saw it called on every reply of a connection's first moments), which then had no budget
// left for the socket write itself, +6% per delivery in the burst (BENCHMARKS.md). A frame sent from
// elsewhere (a timer, a late reply) may find the number of a turn that has ended: then it is held as a
// second frame would be. The order is the call order either way; only the count of writes differs.

/** A connection that holds its socket's writes (ws-connection.ts). */
export interface HeldWrites {
  /** Lets what it holds go to the kernel now (uncorks); nothing when it holds nothing. */
  flushWrites: () => void
}

/** The connections to flush at the end of this turn, and the list being flushed (reused, not reallocated). */
let dueThisTurn: HeldWrites[] = []
let flushing: HeldWrites[] = []
let flushScheduled = false
/** Advanced as each turn starts: a connection that wrote in turn N and sends again in turn N holds. */
let turn = 1

/** The number of the current turn, to compare with the turn of a connection's last plain write. */
export function currentTurn (): number {
  return turn
}

/**
 * Frames are about to be sent (a publication's fan-out, the answer to a client's frame): unless a turn
 * is under way, one starts, with a new number and a flush at its end.
 */
export function startWriteTurn (): void {
  if (!flushScheduled) scheduleFlush()
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
  turn++
  setImmediate(flushDue)
}

function flushDue (): void {
  // Swap the lists first: a connection that holds again during a flush goes on the next turn's list,
  // not on the one being read. Both keep their capacity: a fan-out to 10k connections grows no array.
  const due = dueThisTurn
  dueThisTurn = flushing
  flushing = due
  flushScheduled = false
  for (let i = 0; i < due.length; i++) due[i].flushWrites()
  due.length = 0
}

/** WRITE_DELAY's timer callback (one timer per holding connection, set with the connection as argument). */
export function flushHeldWrites (held: HeldWrites): void {
  held.flushWrites()
}
