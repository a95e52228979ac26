// Refused upgrades that a browser can read. A browser's WebSocket cannot see the HTTP status of a
// refused upgrade (it reports a bare 1006), so it cannot tell "token refused" from "server down".
// A client that adds `?refusal=close` to the URL is refused differently: the upgrade completes and the
// socket is closed at once with 4000 + the HTTP status (4401, 4403, 4429, 4503: ServerClose.upgradeRefused)
// and the error's message as the reason. Without the parameter, refusals stay plain HTTP errors (docs/protocol.md §2).
//
// Such a socket is closed at once: its TCP connection ends (FIN) right behind the close frame, and
// the socket is destroyed as soon as the kernel has taken both, without waiting for the client's
// close frame. Waiting for it let a client that never answers hold a descriptor outside every cap
// (MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP) for seconds: 3,000 of them at MAX_CONNECTIONS=6 in
// a test of ours (test/ws-refusal-close.test.ts). The client still reads the code and reason: they
// arrived before the end of the stream.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { WebSocket, WebSocketServer } from 'ws'
import { ServerClose } from '../src/core/protocol.js'
import { realtimeErrorHandler } from '../src/http-errors.js'

/** A refused socket whose close frame and FIN the kernel has not taken by then is cut off (a safety net). */
export const REFUSED_SOCKET_GRACE_MS = 2000

/**
 * Closes an upgraded socket that is refused (`cause`), at once: the close frame, the end of the TCP
 * stream behind it, and the descriptor let go once both are written (see the top). `closed` runs
 * when the socket has closed.
 */
export function closeRefusedSocket (socket: WebSocket, tcp: Socket, cause: { code: number, reason: string }, closed?: () => void): void {
  // A frame the client sends meanwhile may fail to parse: ws reports it as an 'error', unhandled otherwise.
  socket.on('error', () => {})
  socket.close(cause.code, cause.reason)
  // 'finish': the close frame and the FIN are in the kernel's hands, which sends them on its own.
  tcp.end(() => socket.terminate())
  const cutOff = setTimeout(() => socket.terminate(), REFUSED_SOCKET_GRACE_MS).unref()
  socket.once('close', () => {
    clearTimeout(cutOff)
    closed?.()
  })
}

/**
 * Whether `request` is a websocket upgrade: @fastify/websocket's `request.ws`, set by its onRequest
 * hook; or Node's mark, when a hook that runs before that one (a host's rate limiter) refused it.
 */
function isUpgrade (request: FastifyRequest): boolean {
  return request.ws || handedToUpgrade(request)
}

/**
 * Node's `upgrade` flag (not in its typings): true when the request went to the server's 'upgrade'
 * listeners (@fastify/websocket's) rather than to 'request', which it does while those listen
 * (not any more once app.close() has begun: a draining node answers upgrades as plain requests).
 */
function handedToUpgrade (request: FastifyRequest): boolean {
  return (request.raw as IncomingMessage & { upgrade?: boolean }).upgrade === true
}

export function wantsRefusalByClose (request: FastifyRequest): boolean {
  return isUpgrade(request) && (request.query as Record<string, unknown> | undefined)?.refusal === 'close'
}

/**
 * The /ws route's error handler: every refusal (our admission check, the rate limiter) ends up here.
 * Clients that asked for it get the refusal as a close code; everybody else the plain HTTP error.
 */
export function refuseUpgrade (wss: () => WebSocketServer) {
  return function (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
    if (!wantsRefusalByClose(request)) {
      // @fastify/websocket ends a refused upgrade's socket once the answer is sent, but only if its
      // onRequest hook marked the request first; refused before that, the socket would stay open (and
      // app.close() wait for it).
      if (!request.ws && handedToUpgrade(request)) reply.raw.once('finish', () => request.raw.socket.destroy())
      return realtimeErrorHandler(error, request, reply)
    }
    const refusal = ServerClose.upgradeRefused(typeof error.statusCode === 'number' ? error.statusCode : 500, error.message)
    reply.hijack()
    const tcp = request.raw.socket as Socket & { _httpMessage?: ServerResponse | null }
    // @fastify/websocket gave the socket to a ServerResponse for the refusal we no longer send.
    tcp._httpMessage?.detachSocket(tcp)
    // A conforming client sends nothing before the 101 answer, so the upgrade's head is empty.
    wss().handleUpgrade(request.raw, tcp, Buffer.alloc(0), socket => closeRefusedSocket(socket, tcp, refusal))
  }
}
