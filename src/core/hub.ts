// This node's connections and its topic -> subscriptions index. The hub subscribes the node to a
// topic at the broker when the first local client subscribes and unsubscribes after the last one
// leaves, and fans each publication out by writing the same, already-serialized frame to every
// local subscriber.
import type { Broker, HistoryResult } from './broker.js'
import { resolveSince } from './brokers/history.js'
import type { Connection, SubscribedAck, TransportName } from './connection.js'
import { OutgoingFrame } from './frame.js'
import { historyReplyBytes, REFUSED, type HistoryBudget } from './history-budget.js'
import { LocalTopic } from './local-topic.js'
import type { Presence } from './presence.js'
import { ErrorCode, ProtocolError, type Publication, type RequestId, type StreamPosition } from './protocol.js'
import type { Stats } from './stats.js'
import { Subscription } from './subscription.js'
import { startWriteTurn } from './write-coalescing.js'

export interface HubOptions {
  maxSubscriptions: number
  /** The most publications a recovering subscribe replays; a bigger gap is `recovered: false`. */
  maxRecovery: number
  /** Presence and join/leave; absent when both are off, so nothing of it runs. */
  presence?: Presence
  /** Pays for recovery replays (docs/protocol.md §2, "History bytes"); absent: replays are free. */
  historyBudget?: HistoryBudget
}

export class Hub {
  readonly connections = new Set<Connection>()
  private readonly byUser = new Map<string, Set<Connection>>()
  private readonly topics = new Map<string, LocalTopic>()
  /** Topics the broker is subscribed to for this node (what the broker has, not what we want). */
  private readonly brokerTopics = new Set<string>()
  /** Per topic, the broker (un)subscribe in progress, so that they run one at a time in order. */
  private readonly brokerOps = new Map<string, Promise<void>>()
  private subscriptionCount = 0
  /** Open connections per transport (realtime_connections{transport}). */
  readonly transportCounts: Record<TransportName, number> = { websocket: 0, sse: 0 }

  constructor (private readonly broker: Broker, private readonly stats: Stats, private readonly options: HubOptions) {}

  add (connection: Connection): void {
    this.connections.add(connection)
    this.transportCounts[connection.transport]++
    const user = connection.user
    if (user === null) return
    let connections = this.byUser.get(user)
    if (connections === undefined) this.byUser.set(user, connections = new Set())
    connections.add(connection)
  }

  remove (connection: Connection): void {
    if (!this.connections.delete(connection)) return
    this.transportCounts[connection.transport]--
    for (const subscription of connection.subscriptions.values()) this.unindex(subscription)
    connection.subscriptions.clear()
    const user = connection.user
    const connections = user === null ? undefined : this.byUser.get(user)
    if (connections === undefined) return
    connections.delete(connection)
    if (connections.size === 0) this.byUser.delete(user as string)
  }

  connectionsOf (user: string): ReadonlySet<Connection> {
    return this.byUser.get(user) ?? new Set()
  }

  /**
   * Subscribes, replies with the ack and, when `since` allows recovery, replays the missed
   * publications; live publications that race with all this are held back and delivered after.
   * A `since` reads up to HISTORY_SIZE publications: that read is paid from `budgetKey`'s history
   * budget (none for admins), and refused with `rate_limited` while it is in deficit. The client
   * then subscribes again later from the same position, so nothing is lost (docs/protocol.md §2).
   */
  async subscribe (connection: Connection, id: RequestId, topic: string, since?: StreamPosition, budgetKey?: string): Promise<void> {
    if (connection.subscriptions.has(topic)) throw new ProtocolError(ErrorCode.badRequest, `already subscribed to "${topic}"`)
    if (connection.subscriptions.size >= this.options.maxSubscriptions) {
      throw new ProtocolError(ErrorCode.limitExceeded, `at most ${this.options.maxSubscriptions} subscriptions per connection`)
    }
    const budget = since === undefined || budgetKey === undefined ? undefined : this.options.historyBudget
    // Refused before the broker subscription and presence are set up for nothing.
    if (budget !== undefined && !budget.hasCredit(budgetKey as string)) this.refuseReplay(budget)
    const subscription = new Subscription(connection, topic)
    connection.subscriptions.set(topic, subscription)
    this.index(subscription)
    try {
      await this.syncBrokerSubscription(topic)
      if (!this.brokerTopics.has(topic)) throw new ProtocolError(ErrorCode.unavailable, 'the broker could not subscribe')
      // Read the stream only now that live publications are flowing, so none falls in between.
      const read = async (): Promise<HistoryResult> => await this.broker.history(topic, since === undefined ? { limit: 0 } : { since, limit: this.options.maxRecovery })
      const [history] = await Promise.all([
        // The caller's earlier history requests go first; a subscription removed meanwhile reads nothing.
        budget === undefined ? read() : budget.serve(budgetKey as string, async () => subscription.removed ? undefined : await read(), historyReplyBytes),
        this.options.presence?.enter(subscription)
      ])
      if (history === REFUSED) this.refuseReplay(budget as HistoryBudget)
      if (history === undefined) return
      this.topics.get(topic)?.seen(history)
      const recovered = since === undefined ? undefined : this.canRecover(since, history, history.publications)
      if (recovered !== undefined) this.stats.recoveries[recovered ? 'recovered' : 'failed']++
      const ack: SubscribedAck = { topic, epoch: history.epoch, offset: history.offset }
      if (recovered !== undefined) ack.recovered = recovered
      connection.sendSubscribed(id, ack)
      // An unsubscribe (or close) that overtook this subscribe has already removed it: nothing to send.
      if (subscription.removed) return
      this.stats.deliveries += subscription.activate(history, recovered === true ? history.publications : [])
      this.options.presence?.joined(subscription)
    } catch (err) {
      if (connection.subscriptions.get(topic) === subscription) this.unsubscribe(connection, topic)
      throw err
    }
  }

  unsubscribe (connection: Connection, topic: string): void {
    const subscription = connection.subscriptions.get(topic)
    if (subscription === undefined) throw new ProtocolError(ErrorCode.badRequest, `not subscribed to "${topic}"`)
    connection.subscriptions.delete(topic)
    this.unindex(subscription)
  }

  /**
   * Fan-out: the same frame to every local subscriber of the topic, framed (and MessagePack-encoded,
   * compressed) once per publication and written as-is to each socket (Connection.send).
   */
  deliver (publication: Publication): void {
    const subscriptions = this.topics.get(publication.topic)
    if (subscriptions === undefined) return
    const now = Date.now()
    // Clocks of different nodes may disagree by a little: a publication is never early.
    this.stats.deliveryLag.observe(Math.max(0, (now - publication.ts) / 1000))
    subscriptions.published(publication, now)
    const frame = new OutgoingFrame(publication.frame)
    // The publication's first frame to each connection is written as it comes (write-coalescing.ts).
    startWriteTurn()
    let delivered = 0
    for (const subscription of subscriptions) {
      if (subscription.deliver(publication, frame)) delivered++
    }
    this.stats.deliveries += delivered
  }

  /** Fan-out of an offset-less frame (join/leave) to the topic's active local subscribers. */
  deliverEvent (topic: string, text: string): void {
    const subscriptions = this.topics.get(topic)
    if (subscriptions === undefined) return
    const frame = new OutgoingFrame(text)
    startWriteTurn()
    for (const subscription of subscriptions) {
      if (subscription.active) subscription.connection.send(frame)
    }
  }

  /** The topics with a local subscriber, with the traffic this node sees on them (GET /api/topics). */
  localTopics (): IterableIterator<LocalTopic> {
    return this.topics.values()
  }

  get counts (): { connections: number, subscriptions: number, topics: number } {
    return { connections: this.connections.size, subscriptions: this.subscriptionCount, topics: this.topics.size }
  }

  private refuseReplay (budget: HistoryBudget): never {
    this.stats.rateLimited.bytes++
    throw new ProtocolError(ErrorCode.rateLimited, `history replies over ${budget.rate} bytes per second for this user: subscribe again shortly with the same since`)
  }

  /** Recovery is possible when the epoch is the same and history still holds every missed offset. */
  private canRecover (since: StreamPosition, top: StreamPosition, publications: readonly Publication[]): boolean {
    since = resolveSince(since, top.epoch) ?? since
    if (since.epoch !== top.epoch) return false
    const missed = top.offset - since.offset
    if (missed < 0 || missed > this.options.maxRecovery) return false
    return missed === 0 || (publications.length >= missed && publications[0].offset === since.offset + 1)
  }

  private index (subscription: Subscription): void {
    let subscriptions = this.topics.get(subscription.topic)
    if (subscriptions === undefined) this.topics.set(subscription.topic, subscriptions = new LocalTopic(subscription.topic))
    subscriptions.add(subscription)
    this.subscriptionCount++
  }

  private unindex (subscription: Subscription): void {
    subscription.removed = true
    const subscriptions = this.topics.get(subscription.topic)
    if (subscriptions === undefined || !subscriptions.delete(subscription)) return
    this.subscriptionCount--
    this.options.presence?.left(subscription)
    if (subscriptions.size > 0) return
    this.topics.delete(subscription.topic)
    // Nobody waits for this: a failed broker unsubscribe only means some unneeded traffic.
    this.syncBrokerSubscription(subscription.topic).catch(() => {})
  }

  /**
   * Brings the broker's subscription for `topic` in line with whether anyone here wants it. Calls
   * for one topic are chained, so a subscribe racing an unsubscribe never leaves the two out of step.
   */
  private syncBrokerSubscription (topic: string): Promise<void> {
    const previous = this.brokerOps.get(topic) ?? Promise.resolve()
    const operation = previous.then(async () => {
      const wanted = this.topics.has(topic)
      if (wanted && !this.brokerTopics.has(topic)) {
        await this.broker.subscribe(topic)
        this.brokerTopics.add(topic)
      } else if (!wanted && this.brokerTopics.has(topic)) {
        this.brokerTopics.delete(topic)
        await this.broker.unsubscribe(topic)
      }
    })
    const settled = operation.catch(() => {}).then(() => {
      if (this.brokerOps.get(topic) === settled) this.brokerOps.delete(topic)
    })
    this.brokerOps.set(topic, settled)
    return operation
  }
}
