// The checks a client passes before it gets a connection, websocket (routes/ws.ts) or event stream
// (routes/sse.ts) alike: not draining, a MAX_CONNECTIONS slot, an allowed Origin, valid credentials, a
// MAX_CONNECTIONS_PER_USER slot, and the host's `onConnect` hooks. Each refusal is an HTTP error.
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { randomUUID } from 'node:crypto'
import type { Admission } from '../src/core/admission.js'
import { codeOfStatus, refusalMessage, statusOf } from '../src/core/hooks.js'
import type { Identity } from '../src/core/identity.js'
import { ErrorCode } from '../src/core/protocol.js'
import { httpError, HttpError } from '../src/http-errors.js'
import type { RouteOptions } from './index.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the admission check of /ws and /sse (routes/admission.ts), before the connection opens. */
    realtimeIdentity: Identity | null
    /** The reserved slots of an /ws upgrade or /sse stream, from its admission check to its connection's close. */
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
export function logsInfo (log: FastifyBaseLogger): boolean {
  const { isLevelEnabled } = log as { isLevelEnabled?: (level: string) => boolean }
  return typeof isLevelEnabled !== 'function' || isLevelEnabled.call(log, 'info')
}

/**
 * Declares the request fields the admission fills, in the calling route plugin's context, and returns
 * the admission check to run as that route's onRequest hook.
 */
export function connectionAdmission (app: FastifyInstance, options: RouteOptions): (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void {
  const { config, node } = options
  app.decorateRequest('realtimeIdentity', null)
  app.decorateRequest('realtimeAdmission', null)
  app.decorateRequest('realtimeConnectionId', null)

  // Browsers send Origin on every websocket (and on a cross-origin EventSource); a page on another site must not ride on its visitors'
  // credentials (cookies, ?token= in its own URL). Clients without Origin are not browsers: allowed.
  const allowedOrigins = config.allowedOrigins === undefined ? undefined : new Set(config.allowedOrigins.map(o => o.toLowerCase()))
  function checkOrigin (request: FastifyRequest): void {
    const origin = request.headers.origin
    if (allowedOrigins === undefined || origin === undefined) return
    if (!allowedOrigins.has(origin.toLowerCase())) throw httpError(ErrorCode.forbidden, 'origin not allowed (ALLOWED_ORIGINS)')
  }

  // Slots are reserved, never counted from the hub: a check and its increment run in one tick
  // (src/core/admission.ts), so no number of concurrent upgrades gets past the caps.
  // A callback hook rather than an async one: its only wait is the identity's promise, and an async
  // hook cost a promise of its own and one more microtask (Fastify's then() on it) per connect. What
  // it throws before that wait, Fastify's hook runner passes on as it would done(err).
  function admit (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
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
    app.realtimeAuth.authenticate(request).then(identity => { identified(request, admission, identity, done) }, done)
  }

  /** The upgrade's verified identity: a slot of its user, then the host's `onConnect` hooks; done() once admitted. */
  function identified (request: FastifyRequest, admission: Admission, identity: Identity, done: HookHandlerDoneFunction): void {
    if (!admission.identify(identity)) {
      node.stats.rateLimited.connect++
      done(new HttpError(429, ErrorCode.rateLimited, `at most ${config.maxConnectionsPerUser} connections per user`))
      return
    }
    request.realtimeIdentity = identity
    if (node.hooks.has('onConnect')) runConnectHooks(request, identity).then(() => { done() }, done)
    else done()
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

  return admit
}
