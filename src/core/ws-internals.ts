// The parts of a `ws` WebSocket's internals that the pre-framed fan-out reads (ws 8, lib/websocket.js,
// sender.js, permessage-deflate.js). ws exports none of them; they are read, never changed, except the
// idle deflate stream that compression.ts lets go (ws re-creates it on the next compressed frame).
import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'

/** Sender#_state when it is neither deflating nor reading a Blob: a write now goes out in order. */
export const SENDER_IDLE = 0

export interface PerMessageDeflateInternals {
  /** What was negotiated: server_no_context_takeover, server_max_window_bits... */
  params: { server_no_context_takeover?: boolean, server_max_window_bits?: number }
  /** Below this many bytes ws sends a frame uncompressed. */
  _threshold: number
  _deflate: { close: () => void } | null
}

export interface WebSocketInternals {
  /** The TCP socket; null before the upgrade completes. */
  _socket: Socket | null
  _sender: {
    _state: number
    _queue: unknown[]
    /** False in the middle of a fragmented message (never ours, but then nothing may cut in). */
    _firstFragment: boolean
  }
  _extensions: { 'permessage-deflate'?: PerMessageDeflateInternals }
}

export function internals (socket: WebSocket): WebSocketInternals {
  return socket as unknown as WebSocketInternals
}
