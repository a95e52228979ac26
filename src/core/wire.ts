// The wire's shared vocabulary (docs/protocol.md §2), imported by the server (src/core/protocol.ts)
// and by the client library (client/): close codes, error codes, and the shapes both sides read. It
// imports nothing, so the browser bundle takes from it only what the client uses. CloseCode is an
// enum, not a const object, for that reason: esbuild inlines an enum's members where they are read
// and drops the enum itself, where a const object would be bundled whole.

export enum CloseCode {
  normal = 1000,
  goingAway = 1001,
  /** No close frame (websocket) or no `close` event (event stream): the peer or the network ended it. */
  abnormal = 1006,
  tooLarge = 1009,
  internal = 1011,
  tokenExpired = 4001,
  forbidden = 4003,
  rateLimited = 4008,
  slowConsumer = 4009,
  /** Publications of a subscribed topic could not be delivered in order (beyond the contract's list). */
  insufficientState = 4010,
  /** Upgrades refused with `?refusal=close` carry 4000 + the HTTP status (routes/ws-refusal.ts). */
  refusedUnauthorized = 4401,
  refusedForbidden = 4403,
  refusedRateLimited = 4429,
  refusedUnavailable = 4503
}

/** The `code` of an `error` frame and of an HTTP error body. */
export const ErrorCode = {
  badRequest: 'bad_request',
  unauthorized: 'unauthorized',
  forbidden: 'forbidden',
  notFound: 'not_found',
  rateLimited: 'rate_limited',
  tooLarge: 'too_large',
  limitExceeded: 'limit_exceeded',
  unavailable: 'unavailable',
  internal: 'internal'
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** A request's `id`, echoed by its `ack` or `error`. */
export type RequestId = string | number

/** A place in a topic's stream: the stream's epoch and the offset of a publication in it. */
export interface StreamPosition {
  epoch: string
  offset: number
}

/** The first frame of every connection. */
export interface Welcome {
  connectionId: string
  user: string | null
  node: string
  /** ms between the server's heartbeats. */
  heartbeat: number
  /** When the connection's token expires (ms since the epoch), or null. */
  expiresAt: number | null
}
