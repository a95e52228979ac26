import type { HistoryQuery } from '../broker.js'
import type { Publication, StreamPosition } from '../protocol.js'

/**
 * The epoch of a topic that has no stream (never published, expired or evicted): reads answer it with
 * offset 0 and create nothing. `~` never occurs in a real epoch (base64url), so it never collides.
 */
export const EMPTY_EPOCH = '~~~~~~~~'

/**
 * A `since` taken on a topic without a stream ({EMPTY_EPOCH, 0}) means "from the beginning": once the
 * topic has a stream, it is the same as {epoch, 0} in that stream's epoch, so a subscriber that saw
 * the empty position recovers every publication of the first epoch while history still holds them.
 */
export function resolveSince (since: StreamPosition | undefined, epoch: string): StreamPosition | undefined {
  return since !== undefined && since.epoch === EMPTY_EPOCH && since.offset === 0 ? { epoch, offset: 0 } : since
}

/**
 * Picks the publications a history query asks for out of a topic's retained ones (oldest first).
 * With `since` in the current epoch: those after it, oldest first, at most `limit`. Otherwise: the
 * newest `limit`. Shared by the brokers so they answer the same query the same way.
 */
export function selectHistory (retained: readonly Publication[], epoch: string, query: HistoryQuery): Publication[] {
  const limit = query.limit ?? retained.length
  if (limit <= 0) return []
  if (query.since !== undefined && query.since.epoch === epoch) {
    const after = query.since.offset
    return retained.filter(publication => publication.offset > after).slice(0, limit)
  }
  return retained.slice(-limit)
}
