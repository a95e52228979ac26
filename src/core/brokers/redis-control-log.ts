// Control messages (revoke, disconnect) that pub/sub lost, healed from the control log. Pub/sub is
// at-most-once: a message published while a node's subscriber connection is down, reconnecting or
// moving its control subscription to another shard never reaches that node. So every control message
// is also appended to one Redis stream, the control log (redis-keys.ts `controlLog`), by the same script
// that PUBLISHes it (redis-scripts.ts CONTROL), and each node reads the log's new entries every
// RECONCILE_INTERVAL_MS and right after its control subscription is (re)made, applying the ones it did
// not receive. A lost message is so applied within one interval plus one read (docs/protocol.md §3).
//
// Cheap by construction: a read costs O(entries added since the last one), nothing per connection.
// The cursor is the id of the last entry read; the ids delivered by pub/sub ahead of it are kept until
// the cursor passes them, so that no entry is applied twice. An entry applied from the log is late: it
// carries its time (the stream id's milliseconds, Redis' clock), and the node applies it only to the
// connections and admissions it had begun before that time, so a user who reconnected after a
// disconnect is not kicked by its late heal (this assumes the nodes' clocks agree with Redis' within
// much less than a reconnect takes: NTP).
//
// The cursor starts at this process's start time, not at the log's beginning: older entries concern
// no connection of this node. A pub/sub message older than that start is applied as it comes (the log
// never covers it); one the log applied already is dropped.
import type { ControlMessage } from '../broker.js'

/** How often a node reads the control log by default: the heal bound is this plus one read. */
export const RECONCILE_INTERVAL_MS = 5000
/** Entries per XRANGE: a node far behind reads the log in pages. */
const READ_BATCH = 500

/** A stream entry as XRANGE returns it: [id, [field, value, ...]]. */
export type LogEntry = [string, string[]]

export interface ControlLogOptions {
  /** XRANGE of the log after `after` (exclusive), at most `count` entries; rejects when Redis is away. */
  read: (after: string, count: number) => Promise<LogEntry[]>
  /** Applies a message; `sentAt` (ms since the epoch) is set when it comes late, from the log. */
  apply: (message: ControlMessage, sentAt?: number) => void
  /** Milliseconds between two reads (RECONCILE_INTERVAL_MS by default). */
  interval?: number
}

export class ControlLog {
  /** The id of the last entry read from the log (or the start): entries up to it are done. */
  private cursor: StreamId
  /** Where the cursor started: pub/sub messages older than it are never in a read. */
  private readonly origin: StreamId
  /** Ids applied from pub/sub ahead of the cursor, by their text; forgotten once the cursor passes them. */
  private readonly ahead = new Map<string, StreamId>()
  private timer?: NodeJS.Timeout
  private reading?: Promise<void>
  /** A read was asked for while one ran: run one more after it, which sees what the first may not have. */
  private again = false
  private stopped = false

  constructor (private readonly options: ControlLogOptions) {
    this.origin = this.cursor = [Date.now(), 0]
  }

  /** Reads the log every interval from now on (the timer does not keep the process alive). */
  start (): void {
    if (this.stopped || this.timer !== undefined) return
    this.timer = setInterval(() => { void this.reconcile() }, this.options.interval ?? RECONCILE_INTERVAL_MS)
    this.timer.unref()
  }

  stop (): void {
    this.stopped = true
    clearInterval(this.timer)
  }

  /** A control message from pub/sub, with its log id (undefined: sent by a node without the log). */
  received (message: ControlMessage, logId: string | undefined): void {
    const id = logId === undefined ? undefined : parseId(logId)
    if (id === undefined) {
      this.options.apply(message)
      return
    }
    // Read from the log already (a read can overtake the PUBLISH's delivery): applied then.
    if (compare(id, this.origin) > 0 && compare(id, this.cursor) <= 0) return
    if (compare(id, this.cursor) > 0) this.ahead.set(logId as string, id)
    this.options.apply(message)
  }

  /**
   * Applies the log's entries after the cursor that pub/sub did not deliver. Never rejects: a read that
   * fails (Redis or the log's shard away) is tried again at the next tick or resubscription.
   */
  reconcile (): Promise<void> {
    if (this.reading !== undefined) {
      this.again = true
      return this.reading
    }
    this.reading = this.readAll().catch(() => {}).finally(() => {
      this.reading = undefined
      if (this.again && !this.stopped) {
        this.again = false
        void this.reconcile()
      }
    })
    return this.reading
  }

  private async readAll (): Promise<void> {
    for (;;) {
      if (this.stopped) return
      const entries = await this.options.read(formatId(this.cursor), READ_BATCH)
      for (const [logId, fields] of entries) {
        const id = parseId(logId)
        if (id === undefined || this.stopped) continue
        this.cursor = id
        if (this.ahead.delete(logId)) continue
        const message = decodeMessage(fields)
        if (message !== undefined) this.options.apply(message, id[0])
      }
      for (const [text, id] of this.ahead) if (compare(id, this.cursor) <= 0) this.ahead.delete(text)
      if (entries.length < READ_BATCH) return
    }
  }
}

/** A stream id: [milliseconds, sequence]. */
type StreamId = [number, number]

function parseId (text: string): StreamId | undefined {
  const match = /^(\d+)-(\d+)$/.exec(text)
  return match === null ? undefined : [Number(match[1]), Number(match[2])]
}

function formatId (id: StreamId): string {
  return `${id[0]}-${id[1]}`
}

function compare (a: StreamId, b: StreamId): number {
  return a[0] !== b[0] ? a[0] - b[0] : a[1] - b[1]
}

/** The message of a log entry (field `m`, the ControlMessage as JSON); undefined when unreadable. */
function decodeMessage (fields: string[]): ControlMessage | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] !== 'm') continue
    try {
      const message = JSON.parse(fields[i + 1])
      return typeof message === 'object' && message !== null && typeof message.type === 'string' ? message : undefined
    } catch {
      return undefined
    }
  }
  return undefined
}
