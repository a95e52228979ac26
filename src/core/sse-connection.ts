// A server-sent events stream (GET /sse, routes/sse.ts) as a connection: it receives what a websocket
// receives, as events, and sends nothing back. Its topics are fixed when it opens; each `message` and
// `subscribed` event carries the cursor of every topic's position as its id (sse-cursor.ts), which is
// what the browser sends back as Last-Event-ID to resume them all.
//
// Until start() the stream is not committed: a refusal while its topics are being subscribed can still
// be a plain HTTP error. What it is sent meanwhile (the welcome, acks, replays) waits in `pending`.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { Connection, type ConnectionLimits, type SubscribedAck, type TransportName } from './connection.js'
import type { EncodingName } from './encoding.js'
import type { OutgoingFrame } from './frame.js'
import type { Identity } from './identity.js'
import { CloseCode, ServerClose, type CloseCause, type Publication, type RequestId } from './protocol.js'
import { encodeCursorPart, type CursorPosition } from './sse-cursor.js'
import { frameType, SSE_HEARTBEAT, sseEvent } from './sse-events.js'

/** How long an ended stream may take to drain its last bytes to a reader that stopped reading. */
const END_TIMEOUT_MS = 30_000

export const SSE_HEADERS = Object.freeze({
  'content-type': 'text/event-stream; charset=utf-8',
  // No proxy or browser cache may keep or transform a live stream; nginx must not buffer it.
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no'
})

/**
 * SEND_BUFFER_LIMIT, checked once the tick's writes have left: Node corks a chunked response's socket
 * and uncorks it on the next tick, so right after a write `writableLength` still counts bytes that are
 * about to go to the kernel, and a reader that keeps up would be cut for a burst (a replay, one large
 * event). A websocket holds its bytes too (write-coalescing.ts) and, over the limit, writes them out
 * at once and checks what the kernel refused (WebSocketConnection.overLimit).
 */
function checkAfterFlush (connection: SseConnection): void {
  connection.checkBuffer()
}

/** Called once when the stream's response closes, whoever ended it. */
export type StreamClosed = (connection: SseConnection, code: number, reason: string) => void

export class SseConnection extends Connection {
  /** Chunks written before start(); null once the stream is live. */
  private pending: Array<string | Buffer> | null = []
  /** Per topic (in the order of the request), its position as a cursor part; '.' when it has none. */
  private readonly positions: string[]
  private readonly topicIndex = new Map<string, number>()
  private endTimer?: NodeJS.Timeout
  /** A buffer check is due after this tick's writes have left (checkAfterFlush). */
  private checkDue = false

  constructor (
    id: string,
    private readonly response: ServerResponse,
    identity: Identity,
    limits: ConnectionLimits,
    topics: readonly string[],
    since: ReadonlyArray<CursorPosition | undefined>,
    private readonly closed: StreamClosed,
    remoteAddress?: string
  ) {
    super(id, identity, limits, remoteAddress)
    topics.forEach((topic, i) => this.topicIndex.set(topic, i))
    this.positions = topics.map((_, i) => {
      const position = since[i]
      return position === undefined ? '.' : encodeCursorPart(position)
    })
  }

  get transport (): TransportName {
    return 'sse'
  }

  get encoding (): EncodingName {
    return 'json'
  }

  get open (): boolean {
    return !this.closing && !this.response.destroyed
  }

  /**
   * Sends the 200 and what was queued; false when the stream ended before it could begin (the client
   * went away, or a control message or the drain closed it): the caller refuses with an HTTP error.
   */
  start (headers: Record<string, number | string | string[] | undefined>): boolean {
    if (!this.open) return false
    const pending = this.pending ?? []
    this.pending = null
    this.response.on('close', () => this.responseClosed())
    this.response.writeHead(200, Object.assign({}, headers, SSE_HEADERS) as OutgoingHttpHeaders)
    for (const chunk of pending) this.response.write(chunk)
    this.scheduleCheck()
    return this.open
  }

  send (frame: string | OutgoingFrame, publication?: Publication): void {
    if (!this.open) return
    if (publication !== undefined && typeof frame !== 'string' && this.pending === null && this.chunked) {
      this.sendPublication(frame, publication)
      return
    }
    if (publication !== undefined) {
      this.positions[this.topicIndex.get(publication.topic) as number] = encodeCursorPart(publication)
      this.write(`id: ${this.positions.join('.')}\n`)
      this.write(typeof frame === 'string' ? sseEvent('message', frame) : frame.sse())
    } else if (typeof frame !== 'string') {
      this.write(frame.sse())
    } else {
      // A frame made for this connection alone (the welcome): named by its type.
      this.write(sseEvent(frameType(frame), frame))
    }
    this.scheduleCheck()
  }

  /** Whether the response frames its body as HTTP/1.1 chunks (an HTTP/1.0 client's is not). */
  private get chunked (): boolean {
    return (this.response as ServerResponse & { chunkedEncoding?: boolean }).chunkedEncoding === true
  }

  /**
   * The fan-out path, like a websocket's pre-framed one: the publication's event with this stream's id,
   * framed as an HTTP chunk (OutgoingFrame.sseChunk), one write to the TCP socket. ServerResponse.write
   * would take two writes (id and event), each cut into four pieces for chunked encoding, and copy
   * them through a cork until the next tick: 1.6-2.7x the CPU per delivery (BENCHMARKS.md). The
   * header block went out with the welcome (start()), and every write of this stream, ours or
   * ServerResponse's, goes to the same socket in call order, so the body stays one valid chunked
   * stream; `writableLength` counts these bytes too (they are the socket's).
   */
  private sendPublication (frame: OutgoingFrame, publication: Publication): void {
    const part = frame.positionPart(publication)
    const single = this.positions.length === 1
    this.positions[single ? 0 : this.topicIndex.get(publication.topic) as number] = part
    const socket = this.response.socket as NonNullable<ServerResponse['socket']>
    socket.write(frame.sseChunk(single ? part : this.positions.join('.')))
    // Uncorked, the socket has handed to the kernel what it could: checked now, as a websocket is.
    if (socket.writableCorked === 0) this.checkBuffer()
    else this.scheduleCheck()
  }

  /**
   * The `subscribed` event, with the cursor as its id: the topic's position becomes the ack's, unless
   * the missed publications follow (they move it themselves).
   */
  override sendSubscribed (_id: RequestId, ack: SubscribedAck): void {
    if (!this.open) return
    const index = this.topicIndex.get(ack.topic) as number
    if (ack.recovered !== true) this.positions[index] = encodeCursorPart(ack)
    this.write(`id: ${this.positions.join('.')}\n`)
    this.write(sseEvent('subscribed', JSON.stringify(ack)))
    this.scheduleCheck()
  }

  private write (chunk: string | Buffer): void {
    // Node corks the socket for a chunked response and uncorks on the next tick: the id line, the
    // event and whatever else this tick writes to the stream leave in one system call.
    if (this.pending !== null) this.pending.push(chunk)
    else this.response.write(chunk)
  }

  private scheduleCheck (): void {
    if (this.checkDue || this.pending !== null) return
    this.checkDue = true
    process.nextTick(checkAfterFlush, this)
  }

  /** Over SEND_BUFFER_LIMIT still queued once written out: the reader is not keeping up (4009). */
  checkBuffer (): void {
    this.checkDue = false
    if (this.open && this.response.writableLength > this.limits.sendBufferLimit) this.close(ServerClose.slowConsumer)
  }

  /**
   * Ends the stream with a last `close` event naming the cause (what a websocket's close frame says).
   * A slow consumer's stream is cut at once instead: its reader is not reading.
   */
  close (cause: CloseCause): void {
    if (this.closing) return
    this.closing = true
    this.sentCloseCode = cause.code
    this.ownCloseReason = cause.reason
    if (this.pending !== null) return
    if (cause.code === CloseCode.slowConsumer) {
      this.response.destroy()
      return
    }
    this.response.end(sseEvent('close', JSON.stringify({ code: cause.code, reason: cause.reason })))
    this.endTimer = setTimeout(() => this.response.destroy(), END_TIMEOUT_MS)
    this.endTimer.unref()
  }

  terminate (reason: string): void {
    this.closing = true
    this.ownCloseReason ??= reason
    this.response.destroy()
  }

  /** A comment line: nothing answers it, so the heartbeat's reaper never ends a stream. */
  ping (): void {
    if (this.open && this.pending === null) {
      this.response.write(SSE_HEARTBEAT)
      this.scheduleCheck()
    }
  }

  private responseClosed (): void {
    clearTimeout(this.endTimer)
    this.closing = true
    // A stream the client ended (or the network lost) had no close event: 1006, as for a websocket.
    this.closed(this, this.sentCloseCode ?? CloseCode.abnormal, this.ownCloseReason ?? 'the client ended the stream')
  }
}
