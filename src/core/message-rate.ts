// The per-connection message rate limit (docs/protocol.md §2, "Rate limit"): every frame takes a token
// from a bucket of MESSAGE_BURST refilled at MESSAGE_RATE per second, and a client that keeps sending
// into an empty bucket, rather than bursting once, is closed.
import { TokenBucket } from './token-bucket.js'

/** What to do with one frame: handle it, refuse it (the client is told), or close the connection. */
export type RateVerdict = 'accepted' | 'refused' | 'exceeded'

/**
 * A token bucket that also counts refusals in a row. It extends the bucket rather than holding one:
 * it is allocated once per connection, and idle memory per connection is measured (BENCHMARKS.md).
 */
export class MessageRateLimit extends TokenBucket {
  /** Frames refused since the last accepted one. */
  private refusedInARow = 0

  /** Takes a token for one frame; MESSAGE_BURST refusals in a row make the verdict `exceeded`. */
  admit (): RateVerdict {
    if (this.take()) {
      this.refusedInARow = 0
      return 'accepted'
    }
    return ++this.refusedInARow >= this.burst ? 'exceeded' : 'refused'
  }
}
