import type { HistoryQuery } from '../broker.js'
import type { Publication } from '../protocol.js'

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
