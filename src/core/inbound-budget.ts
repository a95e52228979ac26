// The per-user inbound byte budget (USER_INBOUND_RATE bytes per second, USER_INBOUND_BURST bucket),
// shared by all of a user's connections and HTTP requests on this node (docs/protocol.md §5): one
// token bucket per caller in a Map. Anonymous callers are keyed by connection (websocket) or IP
// (HTTP). A caller's bucket is dropped once it has refilled: an idle user costs nothing.
import type { RateVerdict } from './message-rate.js'

interface Bucket {
  tokens: number
  refilledAt: number
  /** Refusals since the last accepted frame or request. */
  refusedInARow: number
}

export class InboundBudget {
  private readonly buckets = new Map<string, Bucket>()
  private sweeper?: NodeJS.Timeout

  /**
   * `refusalsToClose`: that many refusals in a row make the verdict `exceeded` (the websocket is then
   * closed with 4008, like the message rate).
   */
  constructor (
    readonly rate: number,
    readonly burst: number,
    private readonly refusalsToClose: number,
    private readonly now: () => number = Date.now
  ) {}

  /** Takes `bytes` (at most the whole bucket) from `key`'s bucket. */
  admit (key: string, bytes: number): RateVerdict {
    const bucket = this.refilled(key)
    // A request larger than the bucket can pass, once the bucket is full, and empties it.
    const cost = Math.min(bytes, this.burst)
    if (bucket.tokens >= cost) {
      bucket.tokens -= cost
      bucket.refusedInARow = 0
      return 'accepted'
    }
    return ++bucket.refusedInARow >= this.refusalsToClose ? 'exceeded' : 'refused'
  }

  /**
   * Whether `key` may start work whose cost is known only once done (a history reply: docs/protocol.md
   * §2, "History bytes"): its bucket is not in deficit. The cost is then taken with charge().
   */
  hasCredit (key: string): boolean {
    return this.refilled(key).tokens > 0
  }

  /** Seconds until `key`'s bucket is out of deficit (hasCredit again): 0 when it is not in deficit. */
  secondsToCredit (key: string): number {
    const tokens = this.refilled(key).tokens
    return tokens > 0 ? 0 : Math.max(1, Math.ceil((1 - tokens) / this.rate))
  }

  /** Takes all of `bytes` from `key`'s bucket, below zero if need be: a deficit refills at `rate`. */
  charge (key: string, bytes: number): void {
    this.refilled(key).tokens -= bytes
  }

  /** `key`'s bucket refilled up to now, created full for a caller without one. */
  private refilled (key: string): Bucket {
    const now = this.now()
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      bucket = { tokens: this.burst, refilledAt: now, refusedInARow: 0 }
      this.buckets.set(key, bucket)
    } else {
      bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.refilledAt) * this.rate) / 1000)
      bucket.refilledAt = now
    }
    return bucket
  }

  /** Callers with a bucket now (the ones that sent recently). */
  get size (): number {
    return this.buckets.size
  }

  /** Starts dropping refilled buckets every `intervalMs`. */
  start (intervalMs = 10_000): void {
    this.sweeper = setInterval(() => this.sweep(), intervalMs)
    this.sweeper.unref()
  }

  stop (): void {
    clearInterval(this.sweeper)
  }

  /** Drops every bucket that has refilled by now: its caller has been idle long enough. */
  sweep (): void {
    const now = this.now()
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.refilledAt) * this.rate) / 1000 >= this.burst) this.buckets.delete(key)
    }
  }
}
