// One topic the client follows. It keeps the position of the last publication it delivered, so
// that a resubscribe after a reconnect asks for exactly what was missed, and it drops anything at or
// below that position: every message reaches the application once, in offset order.
import { Emitter } from './emitter.js'
import { ClientErrorCode, RealtimeError } from './errors.js'
import type { Message, PresenceEvent, ServerFrame, StreamPosition } from './frames.js'

export type SubscriptionState = 'subscribing' | 'subscribed' | 'unsubscribed'

/**
 * Why continuity was lost: `not_recovered` (a resubscribe's `since` could not be served: history too
 * short, or the stream expired), `epoch` (a live message started a new epoch), `gap` (a live message
 * skipped offsets). The application should reload the topic's state from its source.
 */
/** The epoch of a topic that has no stream yet (docs/protocol.md §1), always at offset 0. */
const EMPTY_EPOCH = '~~~~~~~~'

export type ResetReason = 'not_recovered' | 'epoch' | 'gap'

export interface SubscribedEvent extends StreamPosition {
  /** True when the missed publications are being replayed; false when `since` was not given or could not be served. */
  recovered: boolean
}

export interface SubscriptionEvents<Data = unknown> {
  message: Message<Data>
  subscribed: SubscribedEvent
  reset: { reason: ResetReason }
  join: PresenceEvent
  leave: PresenceEvent
  error: RealtimeError
}

/** What a Subscription needs from its client. */
export interface SubscriptionOwner {
  removeSubscription: (subscription: Subscription<any>) => void
}

export class Subscription<Data = unknown> extends Emitter<SubscriptionEvents<Data>> {
  state: SubscriptionState = 'subscribing'
  /** The last publication delivered (or the ack's position): what a resubscribe sends as `since`. */
  position: StreamPosition | null

  private readonly subscribedOnce: Promise<SubscribedEvent>
  private settle!: { resolve: (event: SubscribedEvent) => void, reject: (error: RealtimeError) => void }

  constructor (readonly topic: string, private readonly owner: SubscriptionOwner, since?: StreamPosition) {
    super()
    this.position = since ?? null
    this.subscribedOnce = new Promise((resolve, reject) => { this.settle = { resolve, reject } })
    // Whoever never asks for ready() must not get an unhandled rejection.
    this.subscribedOnce.catch(() => {})
  }

  /**
   * Resolves on the first `subscribed` (from then on, every publication reaches `message`: subscribe,
   * await ready(), then publish); rejects when the subscribe is refused or unsubscribe() comes first.
   */
  async ready (): Promise<SubscribedEvent> {
    return await this.subscribedOnce
  }

  unsubscribe (): void {
    if (this.state === 'unsubscribed') return
    this.state = 'unsubscribed'
    this.settle.reject(new RealtimeError(ClientErrorCode.closed, `unsubscribed from "${this.topic}" before it was subscribed`))
    this.owner.removeSubscription(this)
  }

  /** @internal The subscribe frame for the current position. */
  subscribeFrame (): { type: 'subscribe', topic: string, since?: StreamPosition } {
    return this.position === null
      ? { type: 'subscribe', topic: this.topic }
      : { type: 'subscribe', topic: this.topic, since: this.position }
  }

  /** @internal The subscribe ack; `askedSince` is the position the subscribe was sent with. */
  handleAck (ack: ServerFrame, askedSince: StreamPosition | undefined): void {
    if (this.state === 'unsubscribed') return
    const recovered = ack.recovered === true
    // When recovered, the replay that follows moves the position; otherwise the subscription is live
    // from the ack's position and everything above it will arrive.
    if (!recovered) this.position = { epoch: ack.epoch, offset: ack.offset }
    this.state = 'subscribed'
    const event = { epoch: ack.epoch, offset: ack.offset, recovered }
    this.settle.resolve(event)
    this.emit('subscribed', event)
    if (askedSince !== undefined && !recovered) this.emit('reset', { reason: 'not_recovered' })
  }

  /** @internal A `message` frame for this topic. */
  handleMessage (message: Message<Data>): void {
    if (this.state !== 'subscribed') return
    const last = this.position
    let reset: ResetReason | undefined
    if (last !== null) {
      if (message.epoch === last.epoch) {
        if (message.offset <= last.offset) return // already delivered (a replay overlapping live ones)
        if (message.offset !== last.offset + 1) reset = 'gap'
      } else if (last.epoch !== EMPTY_EPOCH || message.offset !== 1) {
        // From the empty position (a topic without a stream yet), offset 1 of a first epoch is no reset.
        reset = 'epoch'
      }
    }
    this.position = { epoch: message.epoch, offset: message.offset }
    if (reset !== undefined) this.emit('reset', { reason: reset })
    this.emit('message', message)
  }

  /** @internal join/leave frames. */
  handlePresence (type: 'join' | 'leave', event: PresenceEvent): void {
    if (this.state === 'subscribed') this.emit(type, event)
  }

  /** @internal The connection dropped: the subscription waits for the next one. */
  handleDisconnect (): void {
    if (this.state === 'subscribed') this.state = 'subscribing'
  }

  /** @internal A refused subscribe (forbidden, bad_request, ...): the subscription is over. */
  handleRefusal (error: RealtimeError): void {
    this.state = 'unsubscribed'
    this.settle.reject(error)
    this.emit('error', error)
  }

  /** @internal A failure that the client works around (a timeout, a broker briefly down). */
  reportError (error: RealtimeError): void {
    this.emit('error', error)
  }
}
