// Who is calling: builds the Identity of a websocket upgrade or an HTTP API request (docs/protocol.md
// §3). JWTs are verified by fast-jwt; the rules (credentials, claims, algorithms, revocation) live
// in src/core/auth/. Without a JWT key or a `verify` option the server runs open. The umbrella plugin
// registers it before the node, which takes `realtimeAuth.refresh` in its constructor for `refresh`
// frames; revocations are checked on the broker's control bus, handed over as `revocations`.
import { createVerifier } from 'fast-jwt'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../src/config.js'
import { Authenticator, type TokenVerifier } from '../src/core/auth/authenticator.js'
import { identityFromClaims } from '../src/core/auth/claims.js'
import { MIN_SECRET_BYTES, verificationKey, verifierOptions, type VerificationKey } from '../src/core/auth/keys.js'
import type { ControlBus } from '../src/core/broker.js'
import type { Identity } from '../src/core/identity.js'

declare module 'fastify' {
  interface FastifyInstance {
    realtimeAuth: RealtimeAuth
  }
}

export interface RealtimeAuth {
  /** The caller's identity; rejects with an HTTP error (401/403) when it has none. */
  authenticate: (request: FastifyRequest) => Promise<Identity>
  /**
   * The identity of a websocket `refresh` frame's token (revocation checked); rejects with 401.
   * Undefined when the server cannot verify tokens (open mode, or a host `verify` without `verifyToken`).
   */
  readonly refresh?: (token: string) => Promise<Identity>
  /** Does the server verify anybody? False when it runs open. */
  readonly enforced: boolean
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

/**
 * A verify-only fast-jwt verifier for `key`, built once. Not through @fastify/jwt, whose verify() merges
 * its options again on every call (about 6,500 instructions of each connect; BENCHMARKS.md), and which
 * decorated the host's app (`app.jwt.realtime`) when the host had registered @fastify/jwt itself.
 */
function jwtVerifier (key: VerificationKey): (token: string) => Record<string, unknown> {
  return createVerifier({ key: key.key, ...verifierOptions(key) }) as (token: string) => Record<string, unknown>
}

async function auth (app: FastifyInstance, options: AuthOptions): Promise<void> {
  const { config } = options
  const key = verificationKey(config)
  let verifyToken = options.verifyToken
  if (verifyToken === undefined && key !== undefined) {
    const verifyJwt = jwtVerifier(key)
    verifyToken = token => identityFromClaims(verifyJwt(token), config)
  }
  const { revocations } = options
  const authenticator = new Authenticator<FastifyRequest>({
    apiKey: config.apiKey,
    verifyToken,
    verifyRequest: options.verify,
    isRevoked: revocations === undefined ? undefined : async jti => await revocations.isRevoked(jti)
  })

  if (authenticator.open) {
    if (config.production) {
      throw new Error('refusing to start open with NODE_ENV=production: set JWT_SECRET or JWT_PUBLIC_KEY')
    }
    // Say exactly what stays open, so that nobody mistakes an API key for protection of the topics.
    app.log.warn('NO JWT KEY CONFIGURED: running OPEN, anyone may subscribe and publish to any topic. Set JWT_SECRET or JWT_PUBLIC_KEY in production.')
    app.log.warn(config.apiKey === undefined
      ? 'NO API_KEY either: the admin API (POST /api/revoke, /api/disconnect, GET /api/info) is open to anyone too. Set API_KEY.'
      : 'API_KEY is set: the admin API needs it (X-API-Key); the topics stay open to anyone without a JWT key.')
  } else if (config.jwtSecret !== undefined && Buffer.byteLength(config.jwtSecret) < MIN_SECRET_BYTES) {
    app.log.warn(`JWT_SECRET is shorter than ${MIN_SECRET_BYTES} bytes: tokens signed with it can be brute-forced. Use a long random secret.`)
  }

  // The rate limiter and the route both ask; the token is verified once per request, and every
  // caller awaits the same promise. It is kept on the request (a decorated slot) rather than in a
  // WeakMap keyed by requests, which cost a table entry, and its clean-up, per request.
  const kIdentity = Symbol('realtime.identity')
  app.decorateRequest(kIdentity, null)
  app.decorate('realtimeAuth', {
    enforced: !authenticator.open,
    refresh: authenticator.canRefresh ? async (token: string) => await authenticator.refresh(token) : undefined,
    authenticate: (request: FastifyRequest): Promise<Identity> => {
      const slot = request as FastifyRequest & { [kIdentity]: Promise<Identity> | null }
      slot[kIdentity] ??= authenticator.authenticate(request)
      return slot[kIdentity]
    }
  })
}

export default fp(auth, { fastify: '5.x', name: 'fastify-realtime-auth' })
