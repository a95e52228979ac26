// GET /ws: every check happens before the upgrade, so a refused client gets a plain HTTP error
// (401/403/429/503) and never a working socket; with `?refusal=close`, a close code instead
// (routes/ws-refusal.ts).
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { randomUUID } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'
import { LIMITED_ROUTE } from '../plugins/rate-limit.js'
import type { Admission } from '../src/core/admission.js'
import { armExpiry } from '../src/core/auth/expiry.js'
import { codeOfStatus, refusalMessage, statusOf } from '../src/core/hooks.js'
import { OPEN_IDENTITY, type Identity } from '../src/core/identity.js'
import { ErrorCode, type CloseCause } from '../src/core/protocol.js'
import { httpError, HttpError } from './errors.js'
import type { RouteOptions } from './index.js'
import { closeRefusedSocket, refuseUpgrade } from './ws-refusal.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the /ws route's admission check, before the upgrade. */
    realtimeIdentity: Identity | null
    /** The /ws upgrade's reserved slots, from its admission check to its connection's close. */
    realtimeAdmission: Admission | null
    /** The connection id the `onConnect` hooks were told (null: no hook ran; the node makes one). */
    realtimeConnectionId: string | null
  }
}

/** The statuses an `onConnect` hook's error may refuse with; any other refuses with 403 (docs/hooks.md). */
const CONNECT_REFUSALS: ReadonlySet<number> = new Set([401, 403, 429, 503])

/** The HTTP refusal for what an `onConnect` hook threw: its status (401/403/429/503, else 403) and message. */
function connectRefusal (err: unknown): HttpError {
  const given = statusOf(err)
  const status = given !== undefined && CONNECT_REFUSALS.has(given) ? given : 403
  return new HttpError(status, codeOfStatus(status) ?? ErrorCode.forbidden, refusalMessage(err))
}

/** Whether `log` writes info lines; a host's logger without isLevelEnabled is assumed to. */
function logsInfo (log: FastifyBaseLogger): boolean {
  const { isLevelEnabled } = log as { isLevelEnabled?: (level: string) => boolean }
  return typeof isLevelEnabled !== 'function' || isLevelEnabled.call(log, 'info')
}

export default async function wsRoutes (app: FastifyInstance, options: RouteOptions): Promise<void> {
  const { config, node } = options
  app.decorateRequest('realtimeIdentity', null)
  app.decorateRequest('realtimeAdmission', null)
  app.decorateRequest('realtimeConnectionId', null)

  // Browsers send Origin on every websocket; a page on another site must not ride on its visitors'
  // credentials (cookies, ?token= in its own URL). Clients without Origin are not browsers: allowed.
  const allowedOrigins = config.allowedOrigins === undefined ? undefined : new Set(config.allowedOrigins.map(o => o.toLowerCase()))
  function checkOrigin (request: FastifyRequest): void {
    const origin = request.headers.origin
    if (allowedOrigins === undefined || origin === undefined) return
    if (!allowedOrigins.has(origin.toLowerCase())) throw httpError(ErrorCode.forbidden, 'origin not allowed (ALLOWED_ORIGINS)')
  }

  // Slots are reserved, never counted from the hub: a check and its increment run in one tick
  // (src/core/admission.ts), so no number of concurrent upgrades gets past the caps.
  async function admit (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (node.draining) throw httpError(ErrorCode.unavailable, 'server is shutting down; connect to another node')
    const admission = node.admissions.begin()
    if (admission === undefined) throw httpError(ErrorCode.unavailable, 'server is at MAX_CONNECTIONS')
    request.realtimeAdmission = admission
    // An upgrade whose client goes away before it is accepted gives its slots back: the upgrade's
    // ServerResponse, which holds the TCP socket until releaseUpgrade(), emits 'close' when the socket
    // closes (a refusal releases in the error handler too). An accepted one releases when its
    // connection closes (node.accept). Listening on the response rather than on the TCP socket leaves
    // nothing behind on a socket that lives on: ~0.3 KB per open connection (BENCHMARKS.md).
    reply.raw.on('close', () => admission.release())
    checkOrigin(request)
    const identity = await app.realtimeAuth.authenticate(request)
    if (!admission.identify(identity)) {
      node.stats.rateLimited.connect++
      throw new HttpError(429, ErrorCode.rateLimited, `at most ${config.maxConnectionsPerUser} connections per user`)
    }
    request.realtimeIdentity = identity
    if (node.hooks.has('onConnect')) await runConnectHooks(request, identity)
  }

  /** The host's `onConnect` hooks, last before the upgrade is accepted; a refusal is an HTTP error. */
  async function runConnectHooks (request: FastifyRequest, identity: Identity): Promise<void> {
    const connectionId = randomUUID()
    try {
      await node.hooks.runConnect({ identity, request, connectionId })
    } catch (err) {
      throw connectRefusal(err)
    }
    request.realtimeConnectionId = connectionId
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

  function refuseAdmitted (socket: WebSocket, request: FastifyRequest, cause: CloseCause): void {
    socket.on('error', () => {})
    closeRefusedSocket(socket, request.raw.socket, cause, () => request.realtimeAdmission?.release())
    node.stats.count(node.stats.disconnects, cause.code)
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
