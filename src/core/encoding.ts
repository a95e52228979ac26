// The two ways a connection's frames travel: JSON text (the default) or MessagePack binary, chosen by
// the client through the websocket subprotocol `realtime.msgpack`. The frames and their meaning are the
// same either way; the server builds every frame as JSON text and, for a MessagePack connection,
// re-encodes it (once per publication for the fan-out: see frame.ts). A client's MessagePack frame is
// decoded straight to JSON values (no detour through JSON text) and handled like a parsed JSON frame.
//
// `@msgpack/msgpack` is an optional dependency: loadMsgpack() imports it once, when the websocket
// plugin registers, and the subprotocol is offered only when it is installed. The encode and decode
// calls below are then plain synchronous calls on the hot path.
import type { Decoder, Encoder, ExtensionCodec } from '@msgpack/msgpack'
import type { RawData } from 'ws'
import { importOptional } from './optional-package.js'
import { msgpackShapeProblem } from './msgpack-shape.js'
import { CloseCode, ErrorCode, ProtocolError, type CloseCause } from './protocol.js'

/** The subprotocol that asks for MessagePack frames (both ways); anything else, or none, is JSON. */
export const MSGPACK_SUBPROTOCOL = 'realtime.msgpack'
/** Optional: the subprotocol a client may offer to ask for JSON explicitly. */
export const JSON_SUBPROTOCOL = 'realtime.json'

export type EncodingName = 'json' | 'msgpack'

/** The codec once loadMsgpack() found the package; the process-wide state is the install's. */
let codec: { encoder: Encoder, decoder: Decoder } | undefined
let loading: Promise<boolean> | undefined

/**
 * Imports `@msgpack/msgpack` (once per process; later calls share the first) and tells whether the
 * `realtime.msgpack` subprotocol can be offered: false when the package is not installed.
 */
export async function loadMsgpack (): Promise<boolean> {
  loading ??= importOptional('@msgpack/msgpack', async () => await import('@msgpack/msgpack')).then(msgpack => {
    if (msgpack !== undefined) codec = { encoder: new msgpack.Encoder(), decoder: new msgpack.Decoder({ extensionCodec: timestampsAsText(msgpack) }) }
    return codec !== undefined
  }, err => {
    loading = undefined
    throw err
  })
  return await loading
}

/** Whether loadMsgpack() found `@msgpack/msgpack`. */
export function msgpackAvailable (): boolean {
  return codec !== undefined
}

/**
 * A host's own @fastify/websocket chooses the subprotocol with its own handleProtocols (ws' default
 * echoes the first one offered), so a client may get `realtime.msgpack` from a server without the
 * package: such a connection is closed at once (node.accept) rather than left speaking JSON to a
 * client that encodes MessagePack.
 */
export const MSGPACK_UNAVAILABLE: CloseCause = {
  code: CloseCode.internal,
  reason: 'realtime.msgpack is not available: the server lacks @msgpack/msgpack'
}

export function encodingOf (subprotocol: string): EncodingName {
  return subprotocol === MSGPACK_SUBPROTOCOL ? 'msgpack' : 'json'
}

/**
 * ws' handleProtocols: MessagePack when offered (and installed), else `realtime.json` when offered,
 * else no subprotocol at all (ws' own default would echo whatever the client listed first).
 */
export function selectSubprotocol (offered: Set<string>): string | false {
  if (codec !== undefined && offered.has(MSGPACK_SUBPROTOCOL)) return MSGPACK_SUBPROTOCOL
  if (offered.has(JSON_SUBPROTOCOL)) return JSON_SUBPROTOCOL
  return false
}

/** The loaded codec; only MessagePack connections call for it, and they exist only once it is loaded. */
function loaded (): { encoder: Encoder, decoder: Decoder } {
  if (codec === undefined) throw new Error('@msgpack/msgpack is not loaded (loadMsgpack)')
  return codec
}

/** A server frame (JSON text) as MessagePack bytes: a map with the same fields. */
export function jsonToMsgpack (json: string): Buffer {
  const bytes = loaded().encoder.encode(JSON.parse(json))
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * The decoder's extensions: MessagePack's timestamp (the one extension msgpack-shape.ts lets through)
 * becomes the ISO string JSON.stringify would make of the Date, so decoded frames hold JSON values only.
 */
function timestampsAsText (msgpack: typeof import('@msgpack/msgpack')): ExtensionCodec {
  const codec: ExtensionCodec = new msgpack.ExtensionCodec()
  codec.register({
    type: msgpack.EXT_TIMESTAMP,
    encode: () => null, // the server encodes no Date: its frames are built as JSON text
    decode: data => {
      const date = msgpack.decodeTimestampExtension(data)
      return Number.isNaN(date.getTime()) ? null : date.toISOString()
    }
  })
  return codec
}

/**
 * A client's MessagePack frame (from a MessagePack connection) decoded to the JSON values it stands
 * for, so that everything after the wire (protocol.clientFrameOf, the dispatcher) is the same for both
 * encodings. Its shape is checked before it is decoded (msgpack-shape.ts: at most `maxDepth` levels,
 * no count larger than the frame, no binary values, no NaN or Infinity); throws a `bad_request`
 * ProtocolError when it is refused or is not MessagePack. A timestamp becomes its ISO string.
 */
export function decodeMsgpackFrame (data: RawData, maxDepth: number): unknown {
  const bytes = toBytes(data)
  const problem = msgpackShapeProblem(bytes, maxDepth)
  if (problem !== undefined) throw new ProtocolError(ErrorCode.badRequest, problem)
  try {
    return loaded().decoder.decode(bytes)
  } catch {
    // E.g. a map key that is neither a string nor a number, or `__proto__`.
    throw new ProtocolError(ErrorCode.badRequest, 'a binary frame must be a MessagePack map with a JSON form')
  }
}

function toBytes (data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data)
  return data instanceof ArrayBuffer ? new Uint8Array(data) : data
}
