// Headroom under the open-file limit that answers instead of failing (test/socket-shedding.test.ts). When every
// descriptor is taken, accept() fails with EMFILE: libuv then accepts and drops connections, and
// clients get ECONNRESET for as long as holders (raw TCP connections that never send a request,
// reopened as fast as they are cut) keep the process there. Node's `server.maxConnections` drops
// new connections in the same way, without an answer, and neither Fastify's options nor
// @fastify/under-pressure (which answers 503 from an onRequest hook, by event loop delay and memory,
// after the request has been parsed) count sockets: hence this file.
//
// Every TCP connection of the server is counted from 'connection' to 'close'. One that arrives while
// `maxOpenSockets` are open never reaches the HTTP parser: it is answered at once with a fixed
// `503 Service Unavailable` (`Connection: close`, `Retry-After`, the API's error shape), upgrades
// included (a client cannot read a 4503 close code without an upgrade, and a node this full upgrades
// nothing), and its end of the stream follows. Whatever the client sends is read and dropped until it
// closes, or SHED_LINGER_MS has passed: closing with unread data would reset the connection, and the
// client could lose the answer. A holder's shed socket thus holds a descriptor for SHED_LINGER_MS.
//
// Installed on the standalone server only (src/server.ts); a host that embeds the plugins owns its
// server and its limits (docs/operations.md).
import type { Server } from 'node:http'
import type { Socket } from 'node:net'

/** How long a shed socket may stay open after its answer, for the client's request or close to arrive. */
export const SHED_LINGER_MS = 250
/** Seconds a shed client is asked to wait. */
export const SHED_RETRY_AFTER_S = 2

const BODY = JSON.stringify({
  statusCode: 503,
  code: 'unavailable',
  error: 'Service Unavailable',
  message: 'server is at its open-file limit (too many open connections); retry later'
})

/** The whole answer, built once: a shed socket costs one write. */
const ANSWER = Buffer.from([
  'HTTP/1.1 503 Service Unavailable',
  'Connection: close',
  `Retry-After: ${SHED_RETRY_AFTER_S}`,
  'Content-Type: application/json; charset=utf-8',
  `Content-Length: ${Buffer.byteLength(BODY)}`,
  '', BODY
].join('\r\n'))

export interface SocketShedding {
  /** The server's open TCP connections now, shed ones included. */
  readonly open: number
  /** Connections shed so far. */
  readonly shed: number
}

/**
 * Sheds `server`'s connections beyond `maxOpenSockets`. Must be installed after every other
 * 'connection' listener (Node's HTTP parser, MAX_CONNECTIONS_PER_IP): it runs them for the
 * connections it keeps, and none of them for the ones it sheds.
 */
export function shedBeyond (server: Server, maxOpenSockets: number, lingerMs = SHED_LINGER_MS): SocketShedding {
  const listeners = server.listeners('connection') as Array<(this: Server, socket: Socket) => void>
  server.removeAllListeners('connection')
  const state = { open: 0, shed: 0 }
  // Shared functions, not closures: nothing is allocated per kept connection.
  function closed (): void {
    state.open--
  }
  function cutOff (this: Socket): void {
    this.destroy()
  }
  server.on('connection', function (this: Server, socket: Socket) {
    state.open++
    socket.once('close', closed)
    if (state.open > maxOpenSockets) return shed(socket)
    for (const listener of listeners) listener.call(this, socket)
  })
  function shed (socket: Socket): void {
    state.shed++
    socket.on('error', cutOff)
    socket.end(ANSWER)
    // Read and dropped; the client's end of the stream, or the linger's end, lets the descriptor go.
    socket.resume()
    socket.once('end', cutOff)
    // A deadline, not an idle timeout: a client that trickles bytes gets no longer.
    setTimeout(() => socket.destroy(), lingerMs).unref()
  }
  return state
}
