// Errors the client hands to promises and 'error' listeners. `code` is the protocol's error code
// (bad_request, forbidden, unauthorized, rate_limited, unavailable, ...) or one of the client's own.

export const ClientErrorCode = {
  /** No reply within the `timeout` option. */
  timeout: 'timeout',
  /** The connection dropped after the request was sent: it may or may not have been carried out. */
  disconnected: 'disconnected',
  /** client.close() was called, or the client stopped for good (see `disconnected`). */
  closed: 'closed'
} as const

export class RealtimeError extends Error {
  constructor (readonly code: string, message: string) {
    super(message)
    this.name = 'RealtimeError'
  }
}
