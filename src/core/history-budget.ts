// What `history` replies may cost a caller (docs/protocol.md §2, "History bytes"). A request of a few
// bytes can ask for HISTORY_SIZE publications of up to MAX_PAYLOAD each (6 MB at the defaults): the
// bytes a reply reads and encodes are taken from a budget of USER_INBOUND_RATE bytes per second
// (USER_INBOUND_BURST at most) per caller, kept apart from the inbound bytes so that a large reply
// never makes the caller's own publishes or pings refused.
//
// The rule: a request is served only while the caller's budget is not in deficit; once read, the
// reply's bytes are taken from it before the reply is built, into deficit if it is larger; until the
// deficit has refilled, the caller's history requests get `rate_limited`. A caller's requests are
// served one after the other, so that requests sent together cannot all pass the check before the
// first one is charged. Over time a caller gets at most USER_INBOUND_RATE bytes of replies per
// second, plus the burst and one reply.
//
// The same budget pays for every way history leaves the node: the websocket `history` frame
// (dispatcher.ts), `GET /api/topics/:topic/history` (routes/topics.ts, keyed by user, else by IP) and
// the publications a subscribe with `since` replays (hub.ts).
import type { HistoryResult } from './broker.js'
import { InboundBudget } from './inbound-budget.js'

/** What HistoryBudget.serve resolves with for a request refused over the budget. */
export const REFUSED = Symbol('refused')

export class HistoryBudget {
  private readonly buckets: InboundBudget
  /** Per caller with a request being served: the end of its queue. Empty when nothing is in flight. */
  private readonly queues = new Map<string, Promise<void>>()

  constructor (readonly rate: number, burst: number) {
    // Refusals here never close the connection: the third argument (refusals that close) is unused.
    this.buckets = new InboundBudget(rate, burst, Infinity)
  }

  start (): void {
    this.buckets.start()
  }

  stop (): void {
    this.buckets.stop()
  }

  /**
   * Serves one of `key`'s requests after its earlier ones: `read` fetches what the reply holds
   * (undefined: nothing to send, e.g. the connection began closing), `cost` gives its bytes, taken
   * from the budget before the caller builds the reply. Resolves with what `read` gave, or REFUSED
   * when the budget is in deficit (nothing was read).
   */
  async serve<T> (key: string, read: () => Promise<T | undefined>, cost: (result: T) => number): Promise<T | undefined | typeof REFUSED> {
    const previous = this.queues.get(key)
    const turn = previous === undefined ? this.attempt(key, read, cost) : previous.then(async () => await this.attempt(key, read, cost))
    const settled = turn.then(() => {}, () => {})
    this.queues.set(key, settled)
    // The last one out leaves no entry behind: an idle caller costs nothing.
    settled.then(() => { if (this.queues.get(key) === settled) this.queues.delete(key) }, () => {})
    return await turn
  }

  private async attempt<T> (key: string, read: () => Promise<T | undefined>, cost: (result: T) => number): Promise<T | undefined | typeof REFUSED> {
    if (!this.buckets.hasCredit(key)) return REFUSED
    const result = await read()
    if (result !== undefined) this.buckets.charge(key, cost(result))
    return result
  }

  /** Whether `key` may be served now (its budget is not in deficit): a refusal before any other work. */
  hasCredit (key: string): boolean {
    return this.buckets.hasCredit(key)
  }

  /** Whole seconds until `key` may be served again (an HTTP refusal's Retry-After); 0 when it may now. */
  retryAfter (key: string): number {
    return this.buckets.secondsToCredit(key)
  }

  /** Callers with a bucket now (the ones that asked for history recently). */
  get size (): number {
    return this.buckets.size
  }
}

/** What a history read costs: the bytes of the stored frames it read, which the reply will encode. */
export function historyReplyBytes (history: HistoryResult): number {
  let bytes = 0
  for (const publication of history.publications) bytes += Buffer.byteLength(publication.frame)
  return bytes
}
