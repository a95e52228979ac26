// The two ways a connection's frames travel: JSON text (the default) or MessagePack binary, chosen by
// the client through the websocket subprotocol `realtime.msgpack`. The frames and their meaning are the
// same either way; the server builds every frame as JSON text and, for a MessagePack connection,
// re-encodes it (once per publication for the fan-out: see frame.ts).
import { Decoder, Encoder } from '@msgpack/msgpack'
import type { RawData, WebSocket } from 'ws'

/** The subprotocol that asks for MessagePack frames (both ways); anything else, or none, is JSON. */
export const MSGPACK_SUBPROTOCOL = 'realtime.msgpack'
/** Optional: the subprotocol a client may offer to ask for JSON explicitly. */
export const JSON_SUBPROTOCOL = 'realtime.json'

export type EncodingName = 'json' | 'msgpack'

const encoder = new Encoder()
const decoder = new Decoder()

export function encodingOf (subprotocol: string): EncodingName {
  return subprotocol === MSGPACK_SUBPROTOCOL ? 'msgpack' : 'json'
}

/**
 * ws' handleProtocols: MessagePack when offered, else `realtime.json` when offered, else no
 * subprotocol at all (ws' own default would echo whatever the client listed first).
 */
export function selectSubprotocol (offered: Set<string>): string | false {
  if (offered.has(MSGPACK_SUBPROTOCOL)) return MSGPACK_SUBPROTOCOL
  if (offered.has(JSON_SUBPROTOCOL)) return JSON_SUBPROTOCOL
  return false
}

/** A server frame (JSON text) as MessagePack bytes: a map with the same fields. */
export function jsonToMsgpack (json: string): Buffer {
  const bytes = encoder.encode(JSON.parse(json))
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * A client's MessagePack frame as the JSON text the dispatcher reads, or undefined when it is not
 * MessagePack with a JSON form (binary values have none; a timestamp becomes its ISO string).
 */
export function msgpackToJson (bytes: Uint8Array): string | undefined {
  try {
    return JSON.stringify(decoder.decode(bytes), refuseBinary)
  } catch {
    // Not MessagePack, binary inside, or nested deeper than JSON.stringify's stack allows.
    return undefined
  }
}

function refuseBinary (_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) throw new TypeError('binary values have no JSON form')
  return value
}

type MessageListener = (this: WebSocket, data: RawData, isBinary: boolean) => void

/**
 * On a MessagePack connection, hands the 'message' listeners registered so far (the dispatcher's)
 * each binary frame as the JSON text it stands for, so that everything after the wire is the same
 * for both encodings. A binary frame that is not MessagePack reaches them as it is, and is refused.
 * Called in the tick that registered them, so that no frame arrives in between.
 */
export function readMsgpackFrames (socket: WebSocket): void {
  const listeners = socket.listeners('message') as MessageListener[]
  socket.removeAllListeners('message')
  socket.on('message', function (data, isBinary) {
    const json = isBinary ? msgpackToJson(toBytes(data)) : undefined
    for (const listener of listeners) {
      if (json === undefined) listener.call(socket, data, isBinary)
      else listener.call(socket, Buffer.from(json), false)
    }
  })
}

function toBytes (data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data)
  return data instanceof ArrayBuffer ? new Uint8Array(data) : data
}
