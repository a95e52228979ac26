// The busiest of this node's topics that match a pattern (GET /api/topics, the admin page): one pass
// over the hub's own index, in memory, keeping the top `limit` in order as it goes, so that the answer
// and the work stay bounded by what the node holds and by `limit`, never by what Redis stores.
import type { LocalTopic, TopicTraffic } from './local-topic.js'
import { matchesPattern } from './topics.js'

export interface BusiestTopics {
  /** How many of the node's topics match the pattern (those listed and those left out). */
  matched: number
  /** The busiest `limit` of them, busiest first. */
  topics: TopicTraffic[]
}

/** Busier first: publications per second, then subscribers, then the name (a stable order). */
export function busierFirst (a: TopicTraffic, b: TopicTraffic): number {
  return b.rate - a.rate || b.subscribers - a.subscribers || (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0)
}

/** `pattern` as in the ACLs (`*` one segment, `>` the rest; topics.ts); undefined: every topic. */
export function busiestTopics (topics: Iterable<LocalTopic>, pattern: string | undefined, limit: number, now = Date.now()): BusiestTopics {
  const top: TopicTraffic[] = []
  let matched = 0
  for (const topic of topics) {
    if (pattern !== undefined && !matchesPattern(pattern, topic.topic, null)) continue
    matched++
    const traffic = topic.traffic(now)
    if (top.length === limit && busierFirst(traffic, top[limit - 1]) >= 0) continue
    // Where it goes among the kept ones (binary search), the quietest dropped when over the limit.
    let low = 0
    let high = top.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (busierFirst(top[middle], traffic) <= 0) low = middle + 1
      else high = middle
    }
    top.splice(low, 0, traffic)
    if (top.length > limit) top.pop()
  }
  return { matched, topics: top }
}
