// GET /ws: every check happens before the upgrade, so a refused client gets a plain HTTP error
// (401/403/429/503) and never a working socket; with `?refusal=close`, a close code instead
// (routes/ws-refusal.ts).
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'
import { armExpiry, disarmExpiry } from '../src/core/auth/expiry.js'
import { OPEN_IDENTITY, type Identity } from '../src/core/identity.js'
import { ErrorCode } from '../src/core/protocol.js'
import { httpError, HttpError } from './errors.js'
import type { RouteOptions } from './index.js'
import { refuseUpgrade } from './ws-refusal.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the /ws route's admission check, before the upgrade. */
    realtimeIdentity: Identity | null
  }
}

export default async function wsRoutes (app: FastifyInstance, options: RouteOptions): Promise<void> {
  const { config, node } = options
  app.decorateRequest('realtimeIdentity', null)

  // Browsers send Origin on every websocket; a page on another site must not ride on its visitors'
  // credentials (cookies, ?token= in its own URL). Clients without Origin are not browsers: allowed.
  const allowedOrigins = config.allowedOrigins === undefined ? undefined : new Set(config.allowedOrigins.map(o => o.toLowerCase()))
  function checkOrigin (request: FastifyRequest): void {
    const origin = request.headers.origin
    if (allowedOrigins === undefined || origin === undefined) return
    if (!allowedOrigins.has(origin.toLowerCase())) throw httpError(ErrorCode.forbidden, 'origin not allowed (ALLOWED_ORIGINS)')
  }

  async function admit (request: FastifyRequest): Promise<void> {
    if (node.draining) throw httpError(ErrorCode.unavailable, 'server is shutting down; connect to another node')
    if (node.hub.connections.size >= config.maxConnections) throw httpError(ErrorCode.unavailable, 'server is at MAX_CONNECTIONS')
    checkOrigin(request)
    const identity = await app.realtimeAuth.authenticate(request)
    if (identity.user !== null && node.hub.connectionsOf(identity.user).size >= config.maxConnectionsPerUser) {
      node.stats.rateLimited.connect++
      throw new HttpError(429, ErrorCode.rateLimited, `at most ${config.maxConnectionsPerUser} connections per user`)
    }
    request.realtimeIdentity = identity
  }

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

  const errorHandler = refuseUpgrade(() => app.websocketServer)
  app.get('/ws', { websocket: true, onRequest: admit, errorHandler }, (socket, request) => {
    releaseUpgrade(socket, request)
    // request.ip follows the app's trustProxy: the connection's log lines name the real client.
    const connection = node.accept(socket, request.realtimeIdentity ?? OPEN_IDENTITY, { remoteAddress: request.ip, reqId: request.id })
    // Closes with 4001 at the token's expiry unless a refresh re-arms it.
    armExpiry(connection)
    socket.once('close', () => disarmExpiry(connection))
  })
}
