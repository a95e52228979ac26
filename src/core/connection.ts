// One websocket connection as the core sees it: its identity, its subscriptions, and a send() that
// refuses to let a slow reader grow the server's memory without bound.
//
// Each piece of its state has one writer. The hub fills `subscriptions`; the dispatcher takes a token
// from `messageRate` per frame and renews the identity on `refresh`; the heartbeat pings through
// ping() and hears back through markAlive(); how and why it closed is recorded here only. The token's
// expiry timer is not here at all: auth/expiry.ts keeps it.
import { WebSocket } from 'ws'
import type { Identity } from './identity.js'
import { MessageRateLimit } from './message-rate.js'
import { ServerClose, type CloseCause } from './protocol.js'
import type { Subscription } from './subscription.js'

/** ws would send a Buffer as a binary frame; every frame of ours is JSON text. Shared, not per call. */
const TEXT_FRAME = Object.freeze({ binary: false })

/**
 * The close code ws sent when it failed the connection over `err` (1002, 1007, 1008, 1009...), or
 * undefined for an error that closed nothing (a socket error). ws tags each frame error with that code
 * under its own symbol (lib/constants.js `kStatusCode`, `Symbol('status-code')`), which it neither
 * exports nor registers with Symbol.for: found by its description, so the value is the one ws used,
 * from whichever copy of ws made the socket.
 */
export function wsCloseStatus (err: Error): number | undefined {
  const key = Object.getOwnPropertySymbols(err).find(symbol => symbol.description === 'status-code')
  const status = key === undefined ? undefined : (err as unknown as Record<symbol, unknown>)[key]
  return typeof status === 'number' ? status : undefined
}

export interface ConnectionLimits {
  sendBufferLimit: number
  messageRate: number
  messageBurst: number
}

export class Connection {
  /** This connection's subscriptions by topic; the hub adds and removes them. */
  readonly subscriptions = new Map<string, Subscription>()
  /** The per-connection message rate limit; the dispatcher admits each frame through it. */
  readonly messageRate: MessageRateLimit
  /** When it opened (ms since the epoch), for the close log line's duration. */
  readonly openedAt = Date.now()
  private currentIdentity: Identity
  /** When the oldest unanswered heartbeat ping went out (ms), 0 when none is outstanding. */
  private pingSentAt = 0
  private closing = false
  private sentCloseCode?: number
  private ownCloseReason?: string

  constructor (
    readonly id: string,
    readonly socket: WebSocket,
    identity: Identity,
    private readonly limits: ConnectionLimits,
    /** The client's address (the upgrade's request.ip, so TRUST_PROXY applies), for the log lines. */
    readonly remoteAddress?: string
  ) {
    this.currentIdentity = identity
    this.messageRate = new MessageRateLimit(limits.messageRate, limits.messageBurst)
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

  get open (): boolean {
    return !this.closing && this.socket.readyState === WebSocket.OPEN
  }

  /** The close code this server or ws sent, kept because a peer that never answers reports 1006. */
  get closeCode (): number | undefined {
    return this.sentCloseCode
  }

  /** Why this server ended it, for the close log line (the peer's own reason is in the close event). */
  get closeReason (): string | undefined {
    return this.ownCloseReason
  }

  /** Sends one text frame; a Buffer is written as it is (fan-out encodes a publication once for all). */
  send (frame: string | Buffer): void {
    if (!this.open) return
    this.socket.send(frame, TEXT_FRAME)
    if (this.socket.bufferedAmount > this.limits.sendBufferLimit) this.close(ServerClose.slowConsumer)
  }

  /**
   * Starts the closing handshake. Nothing more is sent after it; ws terminates the socket itself if
   * the peer never answers (30 s), so a reader that stopped reading cannot hold it open for ever.
   */
  close (cause: CloseCause): void {
    if (this.closing) return
    this.closing = true
    this.sentCloseCode = cause.code
    this.ownCloseReason = cause.reason
    this.socket.close(cause.code, cause.reason)
  }

  /**
   * ws has already acted when it emits 'error': a bad frame is answered with the fitting close code
   * and a failed socket is destroyed, so there is nothing to close here. But the peer's socket ends
   * without echoing that close frame (ws stops reading), so the 'close' event says 1006: remember
   * the code ws sent, for the disconnect metrics.
   */
  recordError (err: Error): void {
    this.closing = true
    this.sentCloseCode ??= wsCloseStatus(err)
    this.ownCloseReason ??= err.message
  }

  /** Destroys the socket without a closing handshake (the peer sees 1006); `reason` is for the log. */
  terminate (reason: string): void {
    this.closing = true
    this.ownCloseReason ??= reason
    this.socket.terminate()
  }

  /** Sends a heartbeat ping; the oldest unanswered one is remembered, for the heartbeat's reaper. */
  ping (now: number): void {
    if (this.pingSentAt === 0) this.pingSentAt = now
    this.socket.ping()
  }

  /** A sign of life (a pong, any frame) answers the outstanding ping. */
  markAlive (): void {
    this.pingSentAt = 0
  }

  /** When the oldest unanswered heartbeat ping went out (ms), 0 when none is outstanding. */
  get unansweredPingSince (): number {
    return this.pingSentAt
  }
}
