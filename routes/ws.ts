// GET /ws: every check happens before the upgrade, so a refused client gets a plain HTTP error
// (401/403/429/503) and never a working socket; with `?refusal=close`, a close code instead
// (routes/ws-refusal.ts).
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'
import { LIMITED_ROUTE } from './rate-limit.js'
import type { Admission } from '../src/core/admission.js'
import { armExpiry } from '../src/core/auth/expiry.js'
import { OPEN_IDENTITY } from '../src/core/identity.js'
import type { CloseCause } from '../src/core/protocol.js'
import { connectionAdmission, logsInfo } from './admission.js'
import type { RouteOptions } from './index.js'
import { closeRefusedSocket, refuseUpgrade } from './ws-refusal.js'

export default async function wsRoutes (app: FastifyInstance, options: RouteOptions): Promise<void> {
  const { node } = options
  const admit = connectionAdmission(app, options)

  /**
   * Lets the upgrade's HTTP objects go. @fastify/websocket assigns the socket to a ServerResponse and
   * its error listener closes over the request and reply, so each open connection would keep Fastify's
   * Request/Reply, Node's IncomingMessage/ServerResponse, a child logger and the headers alive:
   * ~3.4 KB per connection, about half of our idle memory per connection (BENCHMARKS.md).
   */
  function releaseUpgrade (socket: WebSocket, request: FastifyRequest): void {
    // `_httpMessage` is how Node's http links a socket to its response (no public getter exists).
    const tcp = request.raw.socket as Socket & { _httpMessage?: ServerResponse | null }
    tcp._httpMessage?.detachSocket(tcp)
    // node.accept attaches the error listener that replaces it (see Connection.recordError).
    socket.removeAllListeners('error')
  }

  function refuseAdmitted (socket: WebSocket, request: FastifyRequest, cause: CloseCause): void {
    socket.on('error', () => {})
    closeRefusedSocket(socket, request.raw.socket, cause, () => request.realtimeAdmission?.release())
    node.stats.count(node.stats.disconnects.websocket, cause.code)
    node.log.info({ user: request.realtimeIdentity?.user ?? null, remoteAddress: request.ip, reqId: request.id, code: cause.code, reason: cause.reason }, 'websocket refused while being admitted')
  }

  const refuse = refuseUpgrade(() => app.websocketServer)
  const errorHandler: typeof refuse = (error, request, reply) => {
    request.realtimeAdmission?.release()
    refuse(error, request, reply)
  }
  app.get('/ws', { websocket: true, onRequest: admit, errorHandler, config: LIMITED_ROUTE }, (socket, request) => {
    releaseUpgrade(socket, request)
    const admission = request.realtimeAdmission as Admission
    if (admission.refusal !== undefined) {
      // Revoked or disconnected while being admitted (after its revocation check, before the hub):
      // closed at once, never welcomed. Its slots go back when the socket closes.
      refuseAdmitted(socket, request, admission.refusal)
      return
    }
    // request.ip follows the app's trustProxy: the connection's log lines name the real client. Read
    // only for those lines: below info level it is one getpeername() call per connect for nothing.
    const remoteAddress = logsInfo(app.log) ? request.ip : undefined
    // The connection gives the admission's slots back, and stops its token's expiry timer, when it closes.
    const connection = node.accept(socket, request.realtimeIdentity ?? OPEN_IDENTITY, { remoteAddress, reqId: request.id, admission, connectionId: request.realtimeConnectionId ?? undefined })
    // In the same tick as Hub.add: from here on a control message finds the connection in the hub.
    admission.accepted()
    // Closes with 4001 at the token's expiry unless a refresh re-arms it (disarmed by node.accept's close).
    armExpiry(connection)
  })
}
