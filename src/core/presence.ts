// Presence (PRESENCE) and join/leave events (JOIN_LEAVE), kept out of the hub: the hub calls in at
// three points of a subscription's life (set up, active, gone) and only when one of them is on, so
// fan-out costs nothing extra when both are off. The broker's PresenceStore keeps the entries (shared
// across nodes) and the Broker carries the join/leave frames; this file decides when and what.
import type { Broker, PresenceEntry, PresenceStore } from './broker.js'
import type { Logger } from './node.js'
import type { Subscription } from './subscription.js'

export interface PresenceOptions {
  /** Record who is subscribed (PRESENCE) in this store; undefined: nothing is recorded. */
  store?: PresenceStore
  /** Send `join`/`leave` frames to the topic's subscribers (JOIN_LEAVE); works without a store. */
  joinLeave: boolean
  /**
   * At most this many `join` events per topic per second from this node (JOIN_LEAVE_RATE); a join over
   * the budget is not announced, and neither is its leave. Default: 20.
   */
  joinLeaveRate?: number
}

/** JOIN_LEAVE_RATE's default, for a Presence built without one. */
export const DEFAULT_JOIN_LEAVE_RATE = 20

/** What the `presence` request and GET /api/topics/:topic/presence answer. */
export interface TopicPresence {
  topic: string
  /** Every subscribed connection, anonymous ones (user null) included. */
  connections: number
  /** Identified users only, with how many of their connections are subscribed; sorted by user. */
  users: Array<{ user: string, connections: number }>
}

/** A `join` or `leave` frame; serialized once, fanned out as-is like a publication. */
export function encodePresenceEvent (type: 'join' | 'leave', topic: string, user: string | null, connectionId: string): string {
  return JSON.stringify({ type, topic, user, connectionId })
}

/** Counts entries per user. Anonymous connections count in `connections` but have no row in `users`. */
export function summarize (topic: string, entries: readonly PresenceEntry[]): TopicPresence {
  const perUser = new Map<string, number>()
  for (const entry of entries) {
    if (entry.user !== null) perUser.set(entry.user, (perUser.get(entry.user) ?? 0) + 1)
  }
  const users = [...perUser].map(([user, connections]) => ({ user, connections }))
  users.sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0))
  return { topic, connections: entries.length, users }
}

export class Presence {
  /** The pending or settled broker write of each recorded subscription, so a removal never overtakes it. */
  private readonly recorded = new WeakMap<Subscription, Promise<void>>()
  /** Subscriptions whose `join` was sent, so that exactly those get a `leave`. */
  private readonly announced = new WeakSet<Subscription>()
  /** Joins announced per topic in the current one-second window; cleared when a new window starts. */
  private readonly joinsThisWindow = new Map<string, number>()
  private windowStart = 0

  constructor (
    /** Carries the join/leave frames (publishEvent), and says whether a failure is worth a warning. */
    private readonly events: Pick<Broker, 'publishEvent' | 'up'>,
    private readonly nodeId: string,
    readonly options: PresenceOptions,
    private readonly log: Logger
  ) {}

  /** Is presence recorded (PRESENCE)? Otherwise the presence request and route answer `not_found`. */
  get tracking (): boolean {
    return this.options.store !== undefined
  }

  /**
   * While a subscribe is being set up: records the connection. The hub waits for it before the ack,
   * so a client that got its ack is already in the topic's presence on every node.
   */
  async enter (subscription: Subscription): Promise<void> {
    // An unsubscribe or close that overtook the subscribe has already run left(): record nothing.
    const { store } = this.options
    if (store === undefined || subscription.removed) return
    const { connection, topic } = subscription
    const write = store.addPresence(topic, { connectionId: connection.id, user: connection.user, node: this.nodeId })
    this.recorded.set(subscription, write.catch(() => {}))
    await write
  }

  /** The subscription is live (after its ack and replay): every subscriber, itself included, gets `join`. */
  joined (subscription: Subscription): void {
    if (!this.options.joinLeave || !this.withinBudget(subscription.topic)) return
    this.announced.add(subscription)
    this.publishEvent('join', subscription)
  }

  /** The subscription is gone (unsubscribe, close, failed subscribe): undo what enter/joined did. */
  left (subscription: Subscription): void {
    const recorded = this.recorded.get(subscription)
    const { store } = this.options
    if (recorded !== undefined && store !== undefined) {
      this.recorded.delete(subscription)
      const { connection, topic } = subscription
      recorded
        .then(() => store.removePresence(topic, connection.id))
        .catch(err => this.warn(err, 'could not remove a presence entry', topic))
    }
    if (this.announced.delete(subscription)) this.publishEvent('leave', subscription)
  }

  /** Who is subscribed to `topic` on every node; empty when nothing is recorded. */
  async report (topic: string): Promise<TopicPresence> {
    return summarize(topic, this.options.store === undefined ? [] : await this.options.store.presence(topic))
  }

  /**
   * Takes one join from the topic's budget for this second (JOIN_LEAVE_RATE): one client toggling
   * subscribe/unsubscribe within MESSAGE_RATE would otherwise make two frames per toggle for every
   * subscriber. Fixed one-second windows; the map holds only the topics with a join in this window.
   */
  private withinBudget (topic: string, now = Date.now()): boolean {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now
      this.joinsThisWindow.clear()
    }
    const used = this.joinsThisWindow.get(topic) ?? 0
    if (used >= (this.options.joinLeaveRate ?? DEFAULT_JOIN_LEAVE_RATE)) return false
    this.joinsThisWindow.set(topic, used + 1)
    return true
  }

  private publishEvent (type: 'join' | 'leave', subscription: Subscription): void {
    const { connection, topic } = subscription
    this.events.publishEvent(topic, encodePresenceEvent(type, topic, connection.user, connection.id))
      .catch(err => this.warn(err, `could not send a ${type} event`, topic))
  }

  private warn (err: unknown, msg: string, topic: string): void {
    // Expected while the broker is down; the Redis broker expires a dead node's entries anyway.
    if (this.events.up) this.log.warn({ err, topic }, msg)
  }
}
