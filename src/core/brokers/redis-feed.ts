// What the Redis brokers hand the listener for the topics this node subscribed to: each publication
// once and in offset order, across reconnects. After a connection comes back, the topics it carries
// are `held` (live publications wait) while their gap is read from history; then history, then what
// was held, is delivered, and `deliver` drops the overlap.
import type { BrokerListener, HistoryQuery, HistoryResult } from '../broker.js'
import type { Publication, StreamPosition } from '../protocol.js'
import { decodePayload } from './redis-codec.js'

export class TopicFeed {
  /** Topics this node is subscribed to, as subscribe/unsubscribe asked. */
  readonly topics = new Set<string>()
  /**
   * Per topic, the position of the last publication handed to the listener: where a gap fill reads
   * from, and at or below which `deliver` drops repeats (Subscription keeps the same per connection).
   */
  private readonly lastDelivered = new Map<string, StreamPosition>()
  /** Topics being gap-filled after a reconnect, with the live publications held back meanwhile. */
  private readonly held = new Map<string, Publication[]>()

  constructor (private readonly listener: () => BrokerListener | undefined) {}

  forget (topic: string): void {
    this.topics.delete(topic)
    this.lastDelivered.delete(topic)
    this.held.delete(topic)
  }

  /** A topic channel's payload: an event goes straight on, a publication waits while its topic is held. */
  receive (topic: string, payload: string): void {
    if (!this.topics.has(topic)) return
    const decoded = decodePayload(payload)
    if (decoded === undefined) return
    if (decoded.type === 'event') {
      this.listener()?.event(topic, decoded.frame)
      return
    }
    const publication: Publication = { topic, epoch: decoded.epoch, offset: decoded.offset, ts: decoded.ts, frame: decoded.frame }
    const held = this.held.get(topic)
    if (held !== undefined) held.push(publication)
    else this.deliver(publication)
  }

  /** Holds back the live publications of `topics` until `fill` delivers what they missed. */
  hold (topics: Iterable<string>): void {
    for (const topic of topics) this.held.set(topic, [])
  }

  /** Delivers what history holds after the last delivered publication, then what was held. */
  async fill (topic: string, history: (query: HistoryQuery) => Promise<HistoryResult>): Promise<void> {
    if (!this.topics.has(topic)) return
    const last = this.lastDelivered.get(topic)
    const missed = await history(last === undefined ? {} : { since: last })
    const held = this.held.get(topic) ?? []
    this.held.delete(topic)
    for (const publication of missed.publications) this.deliver(publication)
    for (const publication of held) this.deliver(publication)
  }

  clear (): void {
    this.held.clear()
  }

  /** Hands a publication to the listener once: a gap fill overlaps live traffic, this drops the repeats. */
  private deliver (publication: Publication): void {
    const last = this.lastDelivered.get(publication.topic)
    if (last !== undefined && last.epoch === publication.epoch && publication.offset <= last.offset) return
    this.lastDelivered.set(publication.topic, { epoch: publication.epoch, offset: publication.offset })
    this.listener()?.publication(publication)
  }
}
