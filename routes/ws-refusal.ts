// Refused upgrades that a browser can read. A browser's WebSocket cannot see the HTTP status of a
// refused upgrade (it reports a bare 1006), so it cannot tell "token refused" from "server down".
// A client that adds `?refusal=close` to the URL is refused differently: the upgrade completes and the
// socket is closed at once with 4000 + the HTTP status (4401, 4403, 4429, 4503) and the error's
// message as the reason. Without the parameter, refusals stay plain HTTP errors (docs/protocol.md §2).
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { WebSocketServer } from 'ws'
import { CloseCode } from '../src/core/protocol.js'
import { realtimeErrorHandler } from './errors.js'

/** A refused socket that does not answer our close frame is cut off after this long. */
const REFUSED_SOCKET_GRACE_MS = 2000
/** The most a close reason may carry (RFC 6455: 125 bytes of payload, 2 of them the code). */
const MAX_REASON_BYTES = 123

export function wantsRefusalByClose (request: FastifyRequest): boolean {
  return request.ws && (request.query as Record<string, unknown> | undefined)?.refusal === 'close'
}

/** The close code that carries an HTTP refusal: 4000 + status for the 4xx/5xx a refusal uses. */
export function refusalCloseCode (statusCode: number): number {
  return statusCode >= 400 && statusCode <= 599 && statusCode !== 500 ? 4000 + statusCode : CloseCode.internal
}

function truncateUtf8 (text: string, maxBytes: number): string {
  const bytes = Buffer.from(text)
  if (bytes.length <= maxBytes) return text
  // Cut on a character boundary: a partial UTF-8 sequence would make ws refuse the reason.
  return bytes.subarray(0, maxBytes).toString().replace(/\uFFFD$/, '')
}

/**
 * The /ws route's error handler: every refusal (our admission check, the rate limiter) ends up here.
 * Clients that asked for it get the refusal as a close code; everybody else the plain HTTP error.
 */
export function refuseUpgrade (wss: () => WebSocketServer) {
  return function (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
    if (!wantsRefusalByClose(request)) return realtimeErrorHandler(error, request, reply)
    const status = typeof error.statusCode === 'number' ? error.statusCode : 500
    const reason = truncateUtf8(status === 500 ? 'internal error' : error.message, MAX_REASON_BYTES)
    reply.hijack()
    const tcp = request.raw.socket as Socket & { _httpMessage?: ServerResponse | null }
    // @fastify/websocket gave the socket to a ServerResponse for the refusal we no longer send.
    tcp._httpMessage?.detachSocket(tcp)
    // A conforming client sends nothing before the 101 answer, so the upgrade's head is empty.
    wss().handleUpgrade(request.raw, tcp, Buffer.alloc(0), socket => {
      socket.close(refusalCloseCode(status), reason)
      const cutOff = setTimeout(() => socket.terminate(), REFUSED_SOCKET_GRACE_MS).unref()
      socket.once('close', () => clearTimeout(cutOff))
    })
  }
}
