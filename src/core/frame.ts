// A server frame on its way to many sockets (a publication's `message`): serialized once as JSON
// text, and turned into each wire form it needs (MessagePack, compressed) at most once, on first use.
// The pre-framed fan-out writes `framed()` — a complete websocket frame — straight to each TCP socket:
// one write of a shared Buffer instead of ws framing and writing header and payload per recipient.
// An event stream gets `sse()`, the same frame as a server-sent event, built once too, and `sseChunk()`,
// that event with its id as an HTTP chunk, written straight to the TCP socket.
import { deflateMessage } from './compression.js'
import { jsonToMsgpack, type EncodingName } from './encoding.js'
import type { StreamPosition } from './protocol.js'
import { encodeCursorPart } from './sse-cursor.js'
import { frameType, sseEvent } from './sse-events.js'

const OPCODE_TEXT = 0x1
const OPCODE_BINARY = 0x2
const FIN = 0x80
const RSV1 = 0x40

export class OutgoingFrame {
  private json?: Buffer
  private msgpack?: Buffer
  private jsonFrame?: Buffer
  private msgpackFrame?: Buffer
  /** Compressed frames by windowBits * 2 + (1 for MessagePack); created for the first compressed recipient. */
  private deflated?: Map<number, Buffer>
  private event?: Buffer
  /** For event streams: the publication's position as a cursor part, and the last chunk built with its id. */
  private cursorPart?: string
  private chunkId?: string
  private chunk?: Buffer

  constructor (readonly text: string) {}

  /** The payload (no frame header) in `encoding`, for ws' own send. */
  payload (encoding: EncodingName): Buffer {
    if (encoding === 'msgpack') return (this.msgpack ??= jsonToMsgpack(this.text))
    return (this.json ??= Buffer.from(this.text))
  }

  /** The complete frame as a server sends it (unmasked, one fragment): text for JSON, binary for MessagePack. */
  framed (encoding: EncodingName): Buffer {
    if (encoding === 'msgpack') return (this.msgpackFrame ??= frameBytes(OPCODE_BINARY, this.payload(encoding), false))
    return (this.jsonFrame ??= frameBytes(OPCODE_TEXT, this.payload(encoding), false))
  }

  /** The frame as a server-sent event (`event: message`, its JSON as `data`), for every event stream. */
  sse (): Buffer {
    return (this.event ??= Buffer.from(sseEvent(frameType(this.text), this.text)))
  }

  /** `publication`'s position as an event id's part (sse-cursor.ts), made once for every stream. */
  positionPart (publication: StreamPosition): string {
    return (this.cursorPart ??= encodeCursorPart(publication))
  }

  /**
   * The event with its `id` line, framed as one HTTP/1.1 chunk (`<size>\r\n`, the bytes, `\r\n`):
   * what a chunked response would write in four pieces, in one Buffer that goes straight to the socket.
   * Built again only when the id changes, so the streams of a single topic, which share their id,
   * share one Buffer, as websockets share their frame.
   */
  sseChunk (id: string): Buffer {
    if (this.chunkId === id) return this.chunk as Buffer
    const event = this.sse()
    const idLine = `id: ${id}\n`
    const head = `${(Buffer.byteLength(idLine) + event.length).toString(16)}\r\n${idLine}`
    const headLength = Buffer.byteLength(head)
    const chunk = Buffer.allocUnsafe(headLength + event.length + 2)
    chunk.write(head, 0)
    event.copy(chunk, headLength)
    chunk[chunk.length - 2] = 0x0d
    chunk[chunk.length - 1] = 0x0a
    this.chunkId = id
    this.chunk = chunk
    return chunk
  }

  /**
   * The frame for a connection with permessage-deflate: compressed (RSV1) with its window when the
   * payload reaches its threshold, exactly when ws would compress it, else the plain frame. Takes
   * numbers, not an object, and keys the cache by a number: nothing is allocated per recipient.
   */
  framedDeflated (encoding: EncodingName, windowBits: number, threshold: number): Buffer {
    const payload = this.payload(encoding)
    if (payload.length < threshold) return this.framed(encoding)
    const key = windowBits * 2 + (encoding === 'msgpack' ? 1 : 0)
    this.deflated ??= new Map()
    let frame = this.deflated.get(key)
    if (frame === undefined) {
      const opcode = encoding === 'msgpack' ? OPCODE_BINARY : OPCODE_TEXT
      this.deflated.set(key, frame = frameBytes(opcode, deflateMessage(payload, windowBits), true))
    }
    return frame
  }
}

/** RFC 6455 §5.2 framing of an unfragmented, unmasked message. */
export function frameBytes (opcode: number, payload: Buffer, compressed: boolean): Buffer {
  const length = payload.length
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10
  const frame = Buffer.allocUnsafe(headerLength + length)
  frame[0] = FIN | (compressed ? RSV1 : 0) | opcode
  if (headerLength === 2) {
    frame[1] = length
  } else if (headerLength === 4) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeUInt32BE(0, 2)
    frame.writeUInt32BE(length, 6)
  }
  payload.copy(frame, headerLength)
  return frame
}
