// A websocket connection (GET /ws): frames through ws, fan-out frames written pre-framed to the TCP
// socket, the frames of one turn (or of WRITE_DELAY ms) written together, and a send() that refuses to
// let a slow reader grow the server's memory without bound.
import type { Socket } from 'node:net'
import { WebSocket } from 'ws'
import { releaseIdleDeflate } from './compression.js'
import { Connection, type ConnectionLimits, type TransportName } from './connection.js'
import { encodingOf, jsonToMsgpack, type EncodingName } from './encoding.js'
import type { OutgoingFrame } from './frame.js'
import type { Identity } from './identity.js'
import { ServerClose, type CloseCause } from './protocol.js'
import { currentTurn, flushAfterThisTurn, flushHeldWrites, type HeldWrites } from './write-coalescing.js'
import { internals, SENDER_IDLE } from './ws-internals.js'

/** ws would send a Buffer as a binary frame; a JSON frame is text. Shared, not per call. */
const TEXT_FRAME = Object.freeze({ binary: false })
/** A MessagePack frame (subprotocol realtime.msgpack) is binary. */
const BINARY_FRAME = Object.freeze({ binary: true })
/** zlib's (and permessage-deflate's) window when server_max_window_bits was not negotiated. */
const DEFAULT_WINDOW_BITS = 15

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

export class WebSocketConnection extends Connection implements HeldWrites {
  /** Whether this connection holds a cork on its TCP socket: what is written now waits for flushWrites(). */
  private holding = false
  /** The turn (write-coalescing.ts) of this connection's last frame written as it came, WRITE_DELAY=0. */
  private plainWriteTurn = 0
  /** WRITE_DELAY's timer, made at the first held frame and re-armed (refresh) for each batch after. */
  private delayTimer?: NodeJS.Timeout

  /** A getter, not a field: nothing more to hold per connection. */
  get transport (): TransportName {
    return 'websocket'
  }

  constructor (
    id: string,
    readonly socket: WebSocket,
    identity: Identity,
    limits: ConnectionLimits,
    remoteAddress?: string
  ) {
    super(id, identity, limits, remoteAddress)
  }

  get open (): boolean {
    return !this.closing && this.socket.readyState === WebSocket.OPEN
  }

  /** The subprotocol the client chose (realtime.msgpack) or JSON. */
  get encoding (): EncodingName {
    return encodingOf(this.socket.protocol)
  }

  /**
   * Sends one frame (Connection.send): a fan-out frame is written pre-framed when it can be. Every
   * frame but a turn's first (WRITE_DELAY=0) joins the socket's held writes (write-coalescing.ts),
   * which leave together at the end of the turn or after WRITE_DELAY.
   */
  send (frame: string | OutgoingFrame): void {
    if (!this.open) return
    const tcp = internals(this.socket)._socket
    if (tcp !== null && !this.holding && !this.firstOfTurn()) this.holdWrites(tcp)
    const encoding = this.encoding
    if (typeof frame !== 'string') {
      this.sendPrepared(frame, encoding, tcp)
    } else if (encoding === 'json') {
      this.sendThroughWs(frame, TEXT_FRAME)
    } else {
      this.sendThroughWs(jsonToMsgpack(frame), BINARY_FRAME)
    }
    if (this.socket.bufferedAmount > this.limits.sendBufferLimit) this.overLimit()
  }

  /**
   * With WRITE_DELAY=0, whether this is the connection's first frame of the turn, which is written as
   * it comes (write-coalescing.ts says why); it records the turn. Small and apart from holdWrites, so
   * that send() stays within V8's inlining budget with the socket write inlined: a burst's deliveries
   * call only this (BENCHMARKS.md).
   */
  private firstOfTurn (): boolean {
    if (this.limits.writeDelay !== 0) return false
    const turn = currentTurn()
    if (this.plainWriteTurn === turn) return false
    this.plainWriteTurn = turn
    return true
  }

  /**
   * Corks the TCP socket for a batch, so that this frame, the ones after it and whatever ws writes
   * meanwhile (its acks, pings, close frames, compressed frames) queue in Node's buffer in call order,
   * and leave in one writev when flushWrites() uncorks. ws corks around its own two-part writes too:
   * corks nest, so those join the queue rather than leave early. With WRITE_DELAY=0 this is a turn's
   * second frame: the first is already on the socket, so the order stays the call order.
   */
  private holdWrites (tcp: Socket): void {
    this.holding = true
    tcp.cork()
    const delay = this.limits.writeDelay
    if (delay === 0) {
      flushAfterThisTurn(this)
    } else if (this.delayTimer === undefined) {
      // Not unref()ed: held frames are due, and the timer is gone once they have left.
      this.delayTimer = setTimeout(flushHeldWrites, delay, this)
    } else {
      // One timer per connection, re-armed for each batch: an idle connection has none running.
      this.delayTimer.refresh()
    }
  }

  /** Lets the held frames go to the kernel (HeldWrites): one writev of all of them. */
  flushWrites (): void {
    if (!this.holding) return
    this.holding = false
    internals(this.socket)._socket?.uncork()
  }

  /**
   * Over SEND_BUFFER_LIMIT by bufferedAmount, which counts the held bytes (it reads the TCP socket's
   * buffer, corked or not): yet the kernel may take them all at once, and a reader that keeps up must
   * not be cut for a large batch (a replay) that merely sat corked. So the held frames go now, and only
   * what the kernel then leaves queued counts, as when every frame was written as it came: a reader
   * that stopped reading is closed with 4009 by the frame that takes its queue over the limit, one that
   * reads only sees its batch go in more than one writev. (Node counts a write the kernel took in part
   * whole until it completes: a batch's, now, as a single frame's before.)
   */
  private overLimit (): void {
    this.flushWrites()
    if (this.socket.bufferedAmount > this.limits.sendBufferLimit) this.close(ServerClose.slowConsumer)
  }

  /** No more batches: what is held leaves now (or, on a destroyed socket, is dropped with it). */
  private stopHolding (): void {
    clearTimeout(this.delayTimer)
    this.delayTimer = undefined
    this.flushWrites()
  }

  /**
   * The pre-framed path: the frame's bytes, framed once per publication, written as they are to the
   * TCP socket. Only while ws has nothing of its own in flight (no queue, no deflate pending, not
   * inside a fragmented message), so the order of frames is the order of send() calls; and
   * bufferedAmount still counts these bytes (it reads the TCP socket's buffer), so 4009 stays exact.
   * A compressed connection gets the frame compressed once for all, which is right only because
   * server_no_context_takeover makes every message stand alone; else ws compresses it itself.
   */
  private sendPrepared (frame: OutgoingFrame, encoding: EncodingName, tcp: Socket | null): void {
    const ws = internals(this.socket)
    const sender = ws._sender
    if (tcp !== null && sender._state === SENDER_IDLE && sender._queue.length === 0 && sender._firstFragment) {
      const deflate = ws._extensions['permessage-deflate']
      if (deflate === undefined) {
        tcp.write(frame.framed(encoding))
        return
      }
      if (deflate.params.server_no_context_takeover === true) {
        tcp.write(frame.framedDeflated(encoding, deflate.params.server_max_window_bits ?? DEFAULT_WINDOW_BITS, deflate._threshold))
        return
      }
    }
    this.sendThroughWs(frame.payload(encoding), encoding === 'json' ? TEXT_FRAME : BINARY_FRAME)
  }

  private sendThroughWs (payload: string | Buffer, options: { binary: boolean }): void {
    if (internals(this.socket)._extensions['permessage-deflate'] === undefined) {
      this.socket.send(payload, options)
    } else {
      // ws compresses this one for this connection: let its deflate stream go once that is done.
      this.socket.send(payload, options, () => releaseIdleDeflate(this.socket))
    }
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
    // The close frame joined the held frames, behind them: all of them leave now, not after WRITE_DELAY.
    this.stopHolding()
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
    // The close frame ws may have written is held with the rest: let it go.
    this.stopHolding()
  }

  /** Destroys the socket without a closing handshake (the peer sees 1006); `reason` is for the log. */
  terminate (reason: string): void {
    this.closing = true
    this.ownCloseReason ??= reason
    // Destroying the socket drops what it holds: nothing is flushed for a peer that gets no goodbye.
    clearTimeout(this.delayTimer)
    this.delayTimer = undefined
    this.holding = false
    this.socket.terminate()
  }

  /** Sends a heartbeat ping; the oldest unanswered one is remembered, for the heartbeat's reaper. */
  ping (now: number): void {
    if (this.pingSentAt === 0) this.pingSentAt = now
    this.socket.ping()
  }
}
