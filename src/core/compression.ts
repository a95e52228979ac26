// COMPRESSION=true: permessage-deflate (RFC 7692), negotiated by ws, shaped so that it costs little.
//
// - server_no_context_takeover: every message the server sends is compressed on its own, so the
//   compressed bytes of one message are the same for every connection. The fan-out compresses each
//   publication once (frame.ts) instead of once per subscriber.
// - client_no_context_takeover and client_max_window_bits: what a client sends needs no history
//   between messages and at most a 2^INFLATE_WINDOW_BITS window to inflate.
// - A connection keeps no deflate stream between its own messages (acks, replays): it is let go once
//   ws is idle (releaseIdleDeflate), so an idle connection holds no zlib memory for sending.
import { constants, deflateRawSync } from 'node:zlib'
import type { WebSocket } from 'ws'
import { internals, SENDER_IDLE } from './ws-internals.js'

/** Smaller frames go uncompressed: deflate cannot win much on them and still costs CPU. */
export const COMPRESSION_THRESHOLD = 256
/** zlib level: the default trade of size for CPU. */
const LEVEL = 6
/** zlib memLevel (memory of the compressor's hash tables): 2^(memLevel+9) bytes while compressing. */
const MEM_LEVEL = 8
/** Caps the window clients may use for what they send: 2^10 bytes of inflate window here. */
const INFLATE_WINDOW_BITS = 10

/** ws' perMessageDeflate option (the @fastify/websocket `options`). */
export const perMessageDeflate = Object.freeze({
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
  clientMaxWindowBits: INFLATE_WINDOW_BITS,
  threshold: COMPRESSION_THRESHOLD,
  zlibDeflateOptions: { level: LEVEL, memLevel: MEM_LEVEL },
  concurrencyLimit: 10
})

/** Bytes after a sync flush that RFC 7692 §7.2.1 removes from the end of a compressed message. */
const SYNC_FLUSH_TAIL = 4

/** One message compressed on its own, as every connection with server_no_context_takeover reads it. */
export function deflateMessage (payload: Buffer, windowBits: number): Buffer {
  const out = deflateRawSync(payload, { level: LEVEL, memLevel: MEM_LEVEL, windowBits, finishFlush: constants.Z_SYNC_FLUSH })
  return out.subarray(0, out.length - SYNC_FLUSH_TAIL)
}

/** ws keeps a connection's deflate stream for its lifetime; with no context to keep, free it when idle. */
export function releaseIdleDeflate (socket: WebSocket): void {
  const ws = internals(socket)
  const extension = ws._extensions['permessage-deflate']
  if (extension?._deflate == null || ws._sender._state !== SENDER_IDLE || ws._sender._queue.length > 0) return
  extension._deflate.close()
  extension._deflate = null
}
