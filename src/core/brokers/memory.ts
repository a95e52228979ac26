// The in-memory broker: one process, no dependencies. Offsets, epochs and history behave exactly as
// with Redis (the conformance tests hold both to the same contract), so a single node can later grow
// into many without clients noticing. It is every part of the broker seam at once: its own presence
// store, control bus and node registry.
import Denque from 'denque'
import type {
  Broker, BrokerListener, BrokerPublishOptions, ControlBus, ControlMessage, HistoryQuery, HistoryResult, NodeInfo,
  NodeRegistry, PresenceEntry, PresenceStore, PublishOutcome
} from '../broker.js'
import { newEpoch } from '../epoch.js'
import { encodeMessageFrame, type Publication, type PublicationInput, type StreamPosition } from '../protocol.js'
import { EMPTY_EPOCH, resolveSince, selectHistory } from './history.js'

export interface MemoryBrokerOptions {
  historySize: number
  /** Seconds a topic's stream (offsets and history) outlives its last publication. */
  historyTtl: number
  /**
   * Bytes of history held across all topics (HISTORY_MEMORY_LIMIT). Over it, whole topics are dropped,
   * least recently published first; a dropped topic's next publication starts a new epoch.
   */
  historyMemoryLimit?: number
  now?: () => number
}

/** What a retained publication costs beyond its frame: the object, its fields, the array slot. */
const PUBLICATION_OVERHEAD = 160
/** What a stream costs beyond its publications: the object, the map entry, the topic string. */
const STREAM_OVERHEAD = 200

/** A character beyond Latin-1: V8 then keeps the whole string at two bytes per character. */
const BEYOND_LATIN1 = /[\u0100-\uffff]/

/**
 * Bytes a string costs: its UTF-8 size, or its size in V8's heap when that is larger. Counting its
 * characters undercounted text beyond ASCII (CJK data: 630 MB of heap under a 268 MB gauge): a CJK
 * character is 3 bytes in UTF-8 and 2 in the heap; one such character in ASCII text makes V8 keep all
 * of it at two bytes per character. ASCII text, the common case, costs one C++ call and no scan.
 */
export function stringBytes (text: string): number {
  const utf8 = Buffer.byteLength(text)
  if (utf8 === text.length) return utf8
  return BEYOND_LATIN1.test(text) ? Math.max(utf8, 2 * text.length) : utf8
}

/** Approximate bytes a retained publication holds: its frame and the publication's own overhead. */
function publicationBytes (publication: Publication): number {
  return stringBytes(publication.frame) + PUBLICATION_OVERHEAD
}

interface Stream {
  epoch: string
  offset: number
  /** The newest `historySize` publications, oldest first. */
  /** Oldest first; a deque, since each publish over HISTORY_SIZE drops the oldest (Array#shift moves every element). */
  history: Denque<Publication>
  expiresAt: number
  /** Approximate bytes this stream holds (history and overhead), counted in `heldBytes`. */
  bytes: number
}

export class MemoryBroker implements Broker, PresenceStore, ControlBus, NodeRegistry {
  readonly up = true
  readonly presenceStore: PresenceStore = this
  readonly controlBus: ControlBus = this
  readonly nodeRegistry: NodeRegistry = this
  private listener?: BrokerListener
  private readonly streams = new Map<string, Stream>()
  private readonly subscribed = new Set<string>()
  /** idempotency key -> the first publication's position, until it expires. */
  private readonly idempotent = new Map<string, { position: StreamPosition, expiresAt: number }>()
  /** jti -> revoked until (ms). */
  private readonly revoked = new Map<string, number>()
  /** topic -> connectionId -> entry. */
  private readonly presenceByTopic = new Map<string, Map<string, PresenceEntry>>()
  private readonly ttlMs: number
  private readonly now: () => number
  private sweeper?: NodeJS.Timeout
  private readonly memoryLimit: number
  private held = 0
  /** The stream published to last: the last entry of `streams`. */
  private newest?: Stream
  private evicted = 0

  constructor (private readonly options: MemoryBrokerOptions) {
    this.ttlMs = options.historyTtl * 1000
    this.now = options.now ?? Date.now
    this.memoryLimit = options.historyMemoryLimit ?? Number.POSITIVE_INFINITY
  }

  /** Approximate bytes of history (and stream bookkeeping) held in memory now: the history gauge. */
  get heldBytes (): number {
    return this.held
  }

  /** Topics dropped so far to stay within the history memory budget. */
  get evictedTopics (): number {
    return this.evicted
  }

  // ---- Broker: publish/subscribe and history ----

  async start (listener: BrokerListener): Promise<void> {
    this.listener = listener
    // Expired streams are also dropped lazily on access; the sweep only bounds memory for idle topics.
    this.sweeper = setInterval(() => this.sweep(), Math.min(this.ttlMs, 60_000))
    this.sweeper.unref()
  }

  async publish (input: PublicationInput, options: BrokerPublishOptions = {}): Promise<PublishOutcome> {
    const ts = this.now()
    const { idempotencyKey, idempotencyTtlMs = 300_000 } = options
    if (idempotencyKey !== undefined) {
      const first = this.idempotent.get(idempotencyKey)
      if (first !== undefined && first.expiresAt > ts) return { epoch: first.position.epoch, offset: first.position.offset, repeated: true }
    }
    const stream = this.stream(input.topic, ts)
    stream.offset += 1
    stream.expiresAt = ts + this.ttlMs
    const position = { epoch: stream.epoch, offset: stream.offset }
    const publication: Publication = {
      topic: input.topic,
      epoch: position.epoch,
      offset: position.offset,
      ts,
      frame: encodeMessageFrame(input.topic, input.dataJson ?? JSON.stringify(input.data), position, ts, input.from)
    }
    if (this.options.historySize > 0) {
      stream.history.push(publication)
      this.account(stream, publicationBytes(publication))
      if (stream.history.length > this.options.historySize) this.account(stream, -publicationBytes(stream.history.shift() as Publication))
      this.enforceBudget(stream)
    }
    if (idempotencyKey !== undefined) this.idempotent.set(idempotencyKey, { position, expiresAt: ts + idempotencyTtlMs })
    if (this.subscribed.has(input.topic)) this.listener?.publication(publication)
    // Fields spelled out, not spread: V8 builds `{ ...a, b }` on a slow path, about 10 µs of each HTTP
    // publish in the server (BENCHMARKS.md); the same goes for the publication above.
    return { epoch: position.epoch, offset: position.offset, repeated: false }
  }

  async publishEvent (topic: string, frame: string): Promise<void> {
    if (this.subscribed.has(topic)) this.listener?.event(topic, frame)
  }

  async subscribe (topic: string): Promise<void> {
    this.subscribed.add(topic)
  }

  async unsubscribe (topic: string): Promise<void> {
    this.subscribed.delete(topic)
  }

  async history (topic: string, query: HistoryQuery = {}): Promise<HistoryResult> {
    // A read never creates a stream: a topic without one answers the empty position (docs/protocol.md §1).
    const stream = this.live(topic, this.now())
    if (stream === undefined) return { epoch: EMPTY_EPOCH, offset: 0, publications: [] }
    const since = resolveSince(query.since, stream.epoch)
    return {
      epoch: stream.epoch,
      offset: stream.offset,
      publications: selectHistory(stream.history.toArray(), stream.epoch, since === query.since ? query : { since, limit: query.limit })
    }
  }

  // ---- ControlBus ----

  async sendControl (message: ControlMessage): Promise<void> {
    this.listener?.control(message)
  }

  async revoke (jti: string, untilMs: number): Promise<void> {
    this.revoked.set(jti, untilMs)
  }

  async isRevoked (jti: string): Promise<boolean> {
    return (this.revoked.get(jti) ?? 0) > this.now()
  }

  // ---- PresenceStore ----

  async addPresence (topic: string, entry: PresenceEntry): Promise<void> {
    let entries = this.presenceByTopic.get(topic)
    if (entries === undefined) this.presenceByTopic.set(topic, entries = new Map())
    entries.set(entry.connectionId, entry)
  }

  async removePresence (topic: string, connectionId: string): Promise<void> {
    const entries = this.presenceByTopic.get(topic)
    if (entries === undefined) return
    entries.delete(connectionId)
    if (entries.size === 0) this.presenceByTopic.delete(topic)
  }

  async presence (topic: string): Promise<PresenceEntry[]> {
    return [...(this.presenceByTopic.get(topic)?.values() ?? [])]
  }

  // ---- NodeRegistry: one process, one node ----

  async nodes (): Promise<NodeInfo[]> {
    return this.listener === undefined ? [] : [this.listener.describe()]
  }

  // ---- lifecycle and streams ----

  async close (): Promise<void> {
    clearInterval(this.sweeper)
    this.listener = undefined
  }

  /** The topic's stream if it has one that has not expired (an expired one is dropped). */
  private live (topic: string, now: number): Stream | undefined {
    const stream = this.streams.get(topic)
    if (stream === undefined) return undefined
    if (stream.expiresAt > now) return stream
    this.drop(topic, stream)
    return undefined
  }

  /**
   * For a publication: the topic's live stream, starting a fresh epoch when it has none, moved to the
   * end of `streams`, which is thereby ordered from least to most recently published.
   */
  private stream (topic: string, now: number): Stream {
    let stream = this.live(topic, now)
    // Already the most recently published (a topic published to again and again): nothing moves.
    // Otherwise a delete and set, which cost a hash lookup and a table shrink on each publish.
    if (stream !== undefined && stream === this.newest) return stream
    if (stream === undefined) {
      stream = { epoch: newEpoch(), offset: 0, history: new Denque(), expiresAt: now + this.ttlMs, bytes: 0 }
      this.account(stream, STREAM_OVERHEAD + stringBytes(topic))
    } else {
      this.streams.delete(topic)
    }
    this.streams.set(topic, stream)
    this.newest = stream
    return stream
  }

  private account (stream: Stream, bytes: number): void {
    stream.bytes += bytes
    this.held += bytes
  }

  private drop (topic: string, stream: Stream): void {
    if (this.newest === stream) this.newest = undefined
    this.streams.delete(topic)
    this.held -= stream.bytes
  }

  /**
   * Over the budget: drops whole topics, least recently published first, never `current` (the one
   * just published to). If `current` alone is over it, its oldest publications go instead.
   */
  private enforceBudget (current: Stream): void {
    if (this.held <= this.memoryLimit) return
    for (const [topic, stream] of this.streams) {
      if (this.held <= this.memoryLimit) return
      if (stream === current) continue
      this.drop(topic, stream)
      this.evicted++
    }
    while (this.held > this.memoryLimit && current.history.length > 1) {
      this.account(current, -publicationBytes(current.history.shift() as Publication))
    }
  }

  private sweep (): void {
    const now = this.now()
    for (const [topic, stream] of this.streams) {
      if (stream.expiresAt <= now) this.drop(topic, stream)
    }
    for (const [key, first] of this.idempotent) {
      if (first.expiresAt <= now) this.idempotent.delete(key)
    }
    for (const [jti, until] of this.revoked) {
      if (until <= now) this.revoked.delete(jti)
    }
  }
}
