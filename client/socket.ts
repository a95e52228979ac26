// Opening the websocket: which constructor, which URL, where the token goes.
//
// Every connection asks for `refusal=close`: a refused upgrade then arrives as a close code
// (4000 + HTTP status: 4401 token refused, 4403 origin, 4429 rate limited, 4503 unavailable) instead of
// an HTTP error that a browser's WebSocket cannot read (docs/protocol.md §2).

/**
 * An event handler whose parameter is checked bivariantly (as a method's is), so that constructors
 * whose handlers take richer events (the `ws` package's `(event: Event) => void`, the DOM's) fit.
 */
type Handler<Event> = { bivarianceHack (event: Event): void }['bivarianceHack']

/** The part of the WebSocket API the client uses: browsers' own, and the `ws` package's. */
export interface WebSocketLike {
  send: (data: string | Uint8Array) => void
  /** The subprotocol the server chose ('' for none). */
  readonly protocol?: string
  /** 'arraybuffer' so that a binary frame arrives as bytes, not a browser Blob. */
  binaryType?: string
  close: (code?: number, reason?: string) => void
  onopen: Handler<unknown> | null
  onmessage: Handler<{ data: unknown }> | null
  onclose: Handler<{ code: number, reason: string }> | null
  onerror: Handler<unknown> | null
}

/** `new WebSocket(url)`; the third argument is the `ws` package's options (for the header). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[], options?: object) => WebSocketLike

/** ws(s):// URL from what the user gave: ws(s)://, http(s):// or, in a page, a path like '/ws'. */
export function socketUrl (url: string): URL {
  const base = (globalThis as { location?: { href: string } }).location?.href
  const parsed = new URL(url, base)
  if (parsed.protocol === 'http:') parsed.protocol = 'ws:'
  if (parsed.protocol === 'https:') parsed.protocol = 'wss:'
  parsed.searchParams.set('refusal', 'close')
  return parsed
}

/**
 * Opens a socket carrying `token`. Browsers cannot set headers on a websocket, so the token goes in
 * `?token=`; a constructor given explicitly that is not the global one (the `ws` package on Node) gets
 * it as an Authorization header, which keeps it out of URLs and access logs.
 */
export function openSocket (constructor: WebSocketConstructor, url: string, token: string | undefined, codec?: MsgpackCodec): WebSocketLike {
  const target = socketUrl(url)
  const inHeader = constructor !== (globalThis as { WebSocket?: unknown }).WebSocket
  const protocols = codec === undefined ? [] : [MSGPACK_SUBPROTOCOL]
  let socket: WebSocketLike
  if (token === undefined || token === '') {
    socket = new constructor(target.href, protocols)
  } else if (inHeader) {
    socket = new constructor(target.href, protocols, { headers: { authorization: `Bearer ${token}` } })
  } else {
    target.searchParams.set('token', token)
    socket = new constructor(target.href, protocols)
  }
  socket.binaryType = 'arraybuffer'
  return socket
}

/** Asks the server for MessagePack frames both ways (docs/protocol.md §2). */
const MSGPACK_SUBPROTOCOL = 'realtime.msgpack'

/**
 * A MessagePack codec, e.g. `{ encode, decode }` from `@msgpack/msgpack`. The client bundles none, so
 * that JSON users do not pay for it; the option brings its own.
 */
export interface MsgpackCodec {
  encode: (value: unknown) => Uint8Array
  decode: (bytes: Uint8Array) => unknown
}

/**
 * A frame to send: MessagePack when the server agreed to it, else JSON. Either way it holds what its
 * JSON holds: MessagePack would keep an `undefined` field as nil, JSON drops it.
 */
export function encodeFrame (socket: WebSocketLike, frame: object, codec: MsgpackCodec | undefined): string | Uint8Array {
  const json = JSON.stringify(frame)
  return codec !== undefined && socket.protocol === MSGPACK_SUBPROTOCOL ? codec.encode(JSON.parse(json)) : json
}

/** A received frame: text is JSON, bytes (ArrayBuffer in browsers, Buffer in `ws`) are MessagePack. Throws when malformed. */
export function decodeFrame (data: unknown, codec: MsgpackCodec | undefined): unknown {
  if (typeof data === 'string' || codec === undefined) return JSON.parse(String(data))
  return codec.decode(data instanceof ArrayBuffer ? new Uint8Array(data) : data as Uint8Array)
}
