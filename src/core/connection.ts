// One websocket connection as the core sees it: its identity, its subscriptions, and a send() that
// refuses to let a slow reader grow the server's memory without bound.
import { WebSocket } from 'ws'
import type { Identity } from './identity.js'
import { CloseCode } from './protocol.js'
import type { Subscription } from './subscription.js'
import { TokenBucket } from './token-bucket.js'

/** ws would send a Buffer as a binary frame; every frame of ours is JSON text. Shared, not per call. */
const TEXT_FRAME = Object.freeze({ binary: false })

/** The close codes ws sends for the frame errors it reports (the rest of WS_ERR_* are 1002). */
const WS_ERROR_CLOSE_CODES: Record<string, number> = {
  WS_ERR_INVALID_UTF8: 1007,
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 1009,
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: 1009
}

export interface ConnectionLimits {
  sendBufferLimit: number
  messageRate: number
  messageBurst: number
}

export class Connection {
  readonly subscriptions = new Map<string, Subscription>()
  readonly bucket: TokenBucket
  /** Frames refused by the rate limit since the last accepted one. */
  rateStrikes = 0
  /** When the oldest unanswered heartbeat ping was sent (ms), 0 when none is outstanding. */
  unansweredPingSince = 0
  /** Fires when the token expires without a refresh (set by the auth layer). */
  expiryTimer?: NodeJS.Timeout
  /** The close code this server chose, recorded because a peer that never answers reports 1006. */
  closeCode?: number
  /** Why this server closed it, for the close log line (the peer's own reason is in the close event). */
  closeReason?: string
  /** When it opened (ms since the epoch), for the close log line's duration. */
  readonly openedAt = Date.now()
  private closing = false

  constructor (
    readonly id: string,
    readonly socket: WebSocket,
    public identity: Identity,
    private readonly limits: ConnectionLimits,
    /** The client's address (the upgrade's request.ip, so TRUST_PROXY applies), for the log lines. */
    readonly remoteAddress?: string
  ) {
    this.bucket = new TokenBucket(limits.messageRate, limits.messageBurst)
  }

  get user (): string | null {
    return this.identity.user
  }

  get open (): boolean {
    return !this.closing && this.socket.readyState === WebSocket.OPEN
  }

  /** Sends one text frame; a Buffer is written as it is (fan-out encodes a publication once for all). */
  send (frame: string | Buffer): void {
    if (!this.open) return
    this.socket.send(frame, TEXT_FRAME)
    if (this.socket.bufferedAmount > this.limits.sendBufferLimit) {
      this.close(CloseCode.slowConsumer, 'slow consumer: send buffer over its limit')
    }
  }

  /**
   * Starts the closing handshake. Nothing more is sent after it; ws terminates the socket itself if
   * the peer never answers (30 s), so a reader that stopped reading cannot hold it open for ever.
   */
  close (code: number, reason = ''): void {
    if (this.closing) return
    this.closing = true
    this.closeCode = code
    this.closeReason = reason
    clearTimeout(this.expiryTimer)
    this.socket.close(code, reason)
  }

  /**
   * ws has already acted when it emits 'error': a bad frame is answered with the fitting close code
   * and a failed socket is destroyed, so there is nothing to close here. But the peer's socket ends
   * without echoing that close frame (ws stops reading), so the 'close' event says 1006: remember
   * the code ws sent, for the disconnect metrics.
   */
  recordError (err: Error & { code?: string }): void {
    this.closing = true
    this.closeCode ??= WS_ERROR_CLOSE_CODES[err.code ?? ''] ?? (err.code?.startsWith('WS_ERR_') === true ? 1002 : undefined)
    this.closeReason ??= err.message
  }

  /** Destroys the socket without a closing handshake (the peer sees 1006); `reason` is for the log. */
  terminate (reason: string): void {
    this.closing = true
    this.closeReason ??= reason
    clearTimeout(this.expiryTimer)
    this.socket.terminate()
  }
}
