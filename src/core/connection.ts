// One client connection as the core sees it, whatever carries it: its identity, its subscriptions,
// its limits, and how and why it closed. The transport is a subclass: a websocket (ws-connection.ts)
// or a server-sent events stream (sse-connection.ts); the hub, the dispatcher, the control messages,
// the heartbeat and token expiry only ever talk to this class.
//
// Each piece of its state has one writer. The hub fills `subscriptions`; the dispatcher takes a token
// from `messageRate` per frame and renews the identity on `refresh`; the heartbeat pings through
// ping() and hears back through markAlive(); how and why it closed is recorded here only. The token's
// expiry timer is not here at all: auth/expiry.ts keeps it.
import type { EncodingName } from './encoding.js'
import type { OutgoingFrame } from './frame.js'
import type { Identity } from './identity.js'
import { MessageRateLimit } from './message-rate.js'
import { encodeAck, type CloseCause, type Publication, type RequestId, type StreamPosition } from './protocol.js'
import type { Subscription } from './subscription.js'

/** What carries a connection: `realtime_connections{transport}` and the log lines say it too. */
export type TransportName = 'websocket' | 'sse'
export const TRANSPORTS: readonly TransportName[] = Object.freeze(['websocket', 'sse'])

/** A subscribe's answer: the topic's position, and whether the missed publications follow (with `since`). */
export interface SubscribedAck extends StreamPosition {
  topic: string
  recovered?: boolean
}

export interface ConnectionLimits {
  sendBufferLimit: number
  /** WRITE_DELAY: ms a websocket's frames may be held to leave together (0: until the end of the turn). */
  writeDelay: number
  messageRate: number
  messageBurst: number
}

export abstract class Connection {
  /** This connection's subscriptions by topic; the hub adds and removes them. */
  readonly subscriptions = new Map<string, Subscription>()
  /** The slots this connection holds (MAX_CONNECTIONS, per user), given back when it closes. */
  admission?: { release: () => void, readonly startedAt?: number }
  /** Made at the first frame: a connection that never sends (most of them) keeps no bucket. */
  private rate?: MessageRateLimit
  /** When it opened (ms since the epoch), for the close log line's duration. */
  readonly openedAt = Date.now()
  /**
   * @internal Written by auth/expiry.ts only: the expiry (ms) whose shared timer this connection is
   * armed on, undefined when none. A field rather than a WeakMap entry: no table insert per connect.
   */
  expiryArmedAt: number | undefined = undefined
  private currentIdentity: Identity
  /** When the oldest unanswered heartbeat ping went out (ms), 0 when none is outstanding. */
  protected pingSentAt = 0
  protected closing = false
  protected sentCloseCode?: number
  protected ownCloseReason?: string
  abstract readonly transport: TransportName

  constructor (
    readonly id: string,
    identity: Identity,
    protected readonly limits: ConnectionLimits,
    /** The client's address (the request's ip, so TRUST_PROXY applies), for the log lines. */
    readonly remoteAddress?: string
  ) {
    this.currentIdentity = identity
  }

  /**
   * The per-connection message rate limit; the dispatcher admits each frame through it. Created full
   * on first use, which is what an eager bucket would hold by then: it refills up to its burst.
   */
  get messageRate (): MessageRateLimit {
    this.rate ??= new MessageRateLimit(this.limits.messageRate, this.limits.messageBurst)
    return this.rate
  }

  get identity (): Identity {
    return this.currentIdentity
  }

  get user (): string | null {
    return this.currentIdentity.user
  }

  /** A `refresh`: the same user under a new token (the dispatcher has checked that `sub` is unchanged). */
  renewIdentity (identity: Identity): void {
    this.currentIdentity = identity
  }

  /** The close code this server (or ws) sent, kept because a peer that never answers reports 1006. */
  get closeCode (): number | undefined {
    return this.sentCloseCode
  }

  /** Why this server ended it, for the close log line (the peer's own reason is in the close event). */
  get closeReason (): string | undefined {
    return this.ownCloseReason
  }

  /** Whether frames still go out: false from the moment its close began. */
  abstract get open (): boolean

  /** How this connection's frames travel: JSON, or MessagePack (realtime.msgpack, websockets only). */
  abstract get encoding (): EncodingName

  /**
   * Sends one frame: JSON text as built by protocol.ts, or a fan-out frame built once for every
   * recipient. `publication` is set when the frame is that publication's `message` (an event stream
   * names its position in the event id). Over SEND_BUFFER_LIMIT buffered, the connection is closed
   * with 4009.
   */
  abstract send (frame: string | OutgoingFrame, publication?: Publication): void

  /** Answers subscribe `id`: an `ack` frame (an event stream sends its `subscribed` event instead). */
  sendSubscribed (id: RequestId, ack: SubscribedAck): void {
    this.send(encodeAck(id, ack))
  }

  /** Ends the connection for `cause` (its close code and reason); nothing more is sent after it. */
  abstract close (cause: CloseCause): void

  /** Ends it at once, without a goodbye (the peer sees 1006); `reason` is for the log. */
  abstract terminate (reason: string): void

  /** A heartbeat: a websocket ping, or a comment line on an event stream. */
  abstract ping (now: number): void

  /** A sign of life (a pong, any frame) answers the outstanding ping. */
  markAlive (): void {
    this.pingSentAt = 0
  }

  /** When the oldest unanswered heartbeat ping went out (ms), 0 when none is outstanding. */
  get unansweredPingSince (): number {
    return this.pingSentAt
  }
}
