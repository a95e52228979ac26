// A topic as this node holds it: the hub's index entry (the local subscriptions) and the traffic the
// node sees on it, for the admin API's busiest topics (GET /api/topics). The figures live as long as
// the entry, that is while the topic has a local subscriber, so they cost nothing for topics nobody
// here follows and never grow beyond the index itself. Counting is two additions per publication, no
// timer: the rate is read from two fixed windows when someone asks.
import type { StreamPosition } from './protocol.js'
import type { Subscription } from './subscription.js'

/** The span, in ms, that publications per second are averaged over. */
export const RATE_WINDOW_MS = 10_000

/** What GET /api/topics reports of one topic. */
export interface TopicTraffic {
  topic: string
  /** Subscriptions to it on this node. */
  subscribers: number
  /** Its top position as this node last saw it (a delivery, or the subscribe's answer); null: not yet known. */
  position: StreamPosition | null
  /** Publications this node received since the topic got its first local subscriber. */
  publications: number
  /** Publications per second over about the last RATE_WINDOW_MS. */
  rate: number
}

export class LocalTopic extends Set<Subscription> {
  /** The top position, as two fields: keeping the publication itself would keep its frame alive. */
  private epoch: string | null = null
  private offset = 0
  publications = 0
  /** Publications in the window that began at `windowStart`, and in the one before it. */
  private current = 0
  private previous = 0
  private windowStart = 0

  constructor (readonly topic: string) {
    super()
  }

  /** A publication reached this node (the hub's fan-out); `now` is the time the hub read already. */
  published (position: StreamPosition, now: number): void {
    this.epoch = position.epoch
    this.offset = position.offset
    const elapsed = now - this.windowStart
    if (elapsed >= RATE_WINDOW_MS) {
      // The window that just ended becomes the previous one, unless a whole window passed in silence.
      this.previous = elapsed < 2 * RATE_WINDOW_MS ? this.current : 0
      this.current = 0
      this.windowStart = now - (elapsed % RATE_WINDOW_MS)
    }
    this.current++
    this.publications++
  }

  /** A subscribe read the topic's top: the position is known before anything is published. */
  seen (position: StreamPosition): void {
    if (this.epoch !== position.epoch || this.offset < position.offset) {
      this.epoch = position.epoch
      this.offset = position.offset
    }
  }

  /**
   * Publications per second over the last RATE_WINDOW_MS: the current window's count plus the part of
   * the previous window still inside that span (the sliding-window estimate of rate limiters).
   */
  rate (now: number): number {
    const elapsed = now - this.windowStart
    if (elapsed >= 2 * RATE_WINDOW_MS) return 0
    const counted = elapsed >= RATE_WINDOW_MS
      ? this.current * (1 - (elapsed - RATE_WINDOW_MS) / RATE_WINDOW_MS)
      : this.current + this.previous * (1 - elapsed / RATE_WINDOW_MS)
    return counted / (RATE_WINDOW_MS / 1000)
  }

  traffic (now: number): TopicTraffic {
    const position = this.epoch === null ? null : { epoch: this.epoch, offset: this.offset }
    return { topic: this.topic, subscribers: this.size, position, publications: this.publications, rate: this.rate(now) }
  }
}
