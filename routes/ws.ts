// GET /ws: every check happens before the upgrade, so a refused client gets a plain HTTP error
// (401/403/429/503) and never an upgraded socket.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Config } from '../src/config.js'
import { armExpiry, disarmExpiry } from '../src/core/auth/expiry.js'
import { OPEN_IDENTITY, type Identity } from '../src/core/identity.js'
import { ErrorCode } from '../src/core/protocol.js'
import { httpError, HttpError } from './errors.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the /ws route's admission check, before the upgrade. */
    realtimeIdentity: Identity | null
  }
}

export default async function wsRoutes (app: FastifyInstance, options: { config: Config }): Promise<void> {
  const { config } = options
  const node = app.realtime
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

  app.get('/ws', { websocket: true, onRequest: admit }, (socket, request) => {
    const connection = node.accept(socket, request.realtimeIdentity ?? OPEN_IDENTITY)
    // Closes with 4001 at the token's expiry unless a refresh re-arms it.
    armExpiry(connection)
    socket.once('close', () => disarmExpiry(connection))
  })
}
