// Who is calling: builds the Identity of a websocket upgrade or an HTTP API request (docs/protocol.md
// §3, docs/auth.md). JWTs are verified by @fastify/jwt: our own registration when the config has a key
// (JWT_SECRET / JWT_PUBLIC_KEY), else the host's when the host registered @fastify/jwt itself, else a
// host `verify`; with none of them the server runs open. The rules (credentials, claims, algorithms,
// revocation) live in src/core/auth/. The umbrella plugin registers this before the node, which
// takes `realtimeAuth.refresh` for `refresh` frames; revocations are checked on the broker's control
// bus, handed over as `revocations`.
import fastifyJwt, { type JWT } from '@fastify/jwt'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../src/config.js'
import { Authenticator, isPromiseLike, type TokenVerifier } from '../src/core/auth/authenticator.js'
import { identityFromClaims } from '../src/core/auth/claims.js'
import { MIN_SECRET_BYTES, verificationKey, verifierOptions, type VerificationKey } from '../src/core/auth/keys.js'
import type { ControlBus } from '../src/core/broker.js'
import type { Identity } from '../src/core/identity.js'
import { ErrorCode, ProtocolError } from '../src/core/protocol.js'

declare module 'fastify' {
  interface FastifyInstance {
    realtimeAuth: RealtimeAuth
  }
}

export interface RealtimeAuth {
  /** The caller's identity; rejects with an HTTP error (401/403) when it has none. */
  authenticate: (request: FastifyRequest) => Promise<Identity>
  /**
   * The identity of a websocket `refresh` frame's token (revocation checked); rejects with 401, or
   * `bad_request` when the server verifies no tokens (open mode, or a host `verify` without `verifyToken`).
   */
  readonly refresh: (token: string) => Promise<Identity>
  /** Does the server verify anybody? False when it runs open. Final once the app is ready. */
  readonly enforced: boolean
  /** Who verifies callers, as the start-up line says it: 'jwt HS256', 'host @fastify/jwt', 'open'... Final once the app is ready. */
  readonly mode: string
}

export interface AuthOptions {
  config: Config
  /**
   * The host's own verification, used instead of the JWT lookup for upgrades and HTTP calls: resolve
   * with the caller's Identity, or throw to refuse (401 with the error's message; an error with
   * statusCode 403 gives 403). X-API-Key and the revocation of `identity.jti` still apply.
   */
  verify?: (request: FastifyRequest) => Identity | Promise<Identity>
  /** Verifies the token of a `refresh` frame; by default the JWT key's verifier (none: refresh is refused). */
  verifyToken?: TokenVerifier
  /** Where revoked tokens are listed: the broker's control bus. Without it, no token counts as revoked. */
  revocations?: Pick<ControlBus, 'isRevoked'>
}

/** The @fastify/jwt namespace of our own registration. */
export const JWT_NAMESPACE = 'realtime'

/** @fastify/jwt's decorator: one JWT, or namespaced ones under their names. */
type JwtDecorator = JWT & Record<string, JWT | undefined>

/**
 * Our own verify-only @fastify/jwt (`public` without `private`: it cannot sign), registered in a child
 * context of its own under a namespace, so that its decorators never reach the host: a host that
 * registers @fastify/jwt later does not collide with it, and one that did earlier keeps its `app.jwt`,
 * `request.jwtVerify()` and `reply.jwtSign()`. Its verifier is built once from the key's options.
 */
async function ownJwtVerifier (app: FastifyInstance, key: VerificationKey): Promise<JWT['verify']> {
  let verifier: JWT | undefined
  await app.register(async function realtimeJwt (child) {
    const hostJwt = child.hasDecorator('jwt') ? child.jwt as JwtDecorator : undefined
    await child.register(fastifyJwt, { secret: { public: key.key }, verify: verifierOptions(key), namespace: JWT_NAMESPACE })
    verifier = (child.jwt as JwtDecorator)[JWT_NAMESPACE]
    // With a host @fastify/jwt in place, @fastify/jwt adds the namespace onto the host's own decorator
    // object (it is the one this child inherits): taken off again, so the host's app.jwt is as it was.
    if (hostJwt !== undefined) Reflect.deleteProperty(hostJwt, JWT_NAMESPACE)
  })
  const jwt = verifier as JWT
  return jwt.verify.bind(jwt)
}

/** The host's non-namespaced @fastify/jwt, when the host registered one in this context. */
function hostJwt (app: FastifyInstance): JWT | undefined {
  if (!app.hasDecorator('jwt')) return undefined
  const jwt = app.jwt as Partial<JWT> | undefined
  return typeof jwt?.verify === 'function' ? jwt as JWT : undefined
}

async function auth (app: FastifyInstance, options: AuthOptions): Promise<void> {
  const { config, revocations } = options
  const key = verificationKey(config)
  // @fastify/jwt verifies synchronously unless its key is a function: then the identity is built at
  // once too, and a connect waits for no microtask (a promise only when the verifier returns one).
  const tokenVerifier = (verify: (token: string) => unknown): TokenVerifier => token => {
    const claims = verify(token)
    return isPromiseLike(claims)
      ? Promise.resolve(claims).then(verified => identityFromClaims(verified as Record<string, unknown>, config))
      : identityFromClaims(claims as Record<string, unknown>, config)
  }

  let mode = options.verify !== undefined ? 'host verify' : options.verifyToken !== undefined ? 'host verifyToken' : 'open'
  let verifyToken = options.verifyToken
  if (verifyToken === undefined && key !== undefined) {
    verifyToken = tokenVerifier(await ownJwtVerifier(app, key))
    mode = `jwt ${key.algorithms.join('|')}`
  }
  const authenticator = new Authenticator<FastifyRequest>({
    apiKey: config.apiKey,
    verifyToken,
    verifyRequest: options.verify,
    isRevoked: revocations === undefined ? undefined : async jti => await revocations.isRevoked(jti)
  })

  /** No key of ours, no host verifier: the host's @fastify/jwt verifies, when the host has one. */
  const adoptHostJwt = (): void => {
    if (verifyToken !== undefined || options.verify !== undefined) return
    const jwt = hostJwt(app)
    if (jwt === undefined) return
    verifyToken = tokenVerifier(token => jwt.verify(token))
    authenticator.useTokenVerifier(verifyToken)
    mode = 'host @fastify/jwt'
  }
  // Now for a host that registered @fastify/jwt before us; again when the app is ready, for one that
  // registered it after us. Whether the server runs open is only known then: a production server
  // with nothing to verify callers is refused at ready, not at registration.
  adoptHostJwt()
  app.addHook('onReady', async () => {
    adoptHostJwt()
    if (authenticator.open) warnOpen(app, config)
    else if (config.jwtSecret !== undefined && Buffer.byteLength(config.jwtSecret) < MIN_SECRET_BYTES) {
      app.log.warn(`JWT_SECRET is shorter than ${MIN_SECRET_BYTES} bytes: tokens signed with it can be brute-forced. Use a long random secret.`)
    }
  })
  // The rate limiter and the route both ask; the token is verified once per request, and every
  // caller awaits the same promise. It is kept on the request (a decorated slot) rather than in a
  // WeakMap keyed by requests, which cost a table entry, and its clean-up, per request.
  const kIdentity = Symbol('realtime.identity')
  app.decorateRequest(kIdentity, null)
  app.decorate('realtimeAuth', {
    get enforced () { return !authenticator.open },
    get mode () { return mode },
    refresh: async (token: string) => {
      if (!authenticator.canRefresh) throw new ProtocolError(ErrorCode.badRequest, 'this server verifies no tokens (no JWT key configured): nothing to refresh')
      return await authenticator.refresh(token)
    },
    authenticate: (request: FastifyRequest): Promise<Identity> => {
      const slot = request as FastifyRequest & { [kIdentity]: Promise<Identity> | null }
      slot[kIdentity] ??= authenticator.authenticate(request)
      return slot[kIdentity]
    }
  })
}

/**
 * Refuses to start open in production (the app's ready() rejects); else says exactly what stays open,
 * so that nobody mistakes an API key for protection of the topics.
 */
function warnOpen (app: FastifyInstance, config: Config): void {
  if (config.production) {
    throw new Error('refusing to start open with NODE_ENV=production: set JWT_SECRET or JWT_PUBLIC_KEY (or register @fastify/jwt in the host app, or pass `verify`)')
  }
  app.log.warn('NO JWT KEY CONFIGURED: running OPEN, anyone may subscribe and publish to any topic. Set JWT_SECRET or JWT_PUBLIC_KEY in production.')
  app.log.warn(config.apiKey === undefined
    ? 'NO API_KEY either: the admin API (POST /api/revoke, /api/disconnect, GET /api/info) is open to anyone too. Set API_KEY.'
    : 'API_KEY is set: the admin API needs it (X-API-Key); the topics stay open to anyone without a JWT key.')
}

export default fp(auth, { fastify: '5.x', name: 'fastify-realtime-auth' })
