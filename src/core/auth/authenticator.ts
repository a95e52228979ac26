// Who is calling, for the websocket upgrade and every HTTP API call: the API key, a JWT (verified by
// the plugin's verifier), or the host's own `verify(request)`; then the revocation list. The plugin
// (plugins/auth.ts) supplies the verifiers; this file holds the rules.
import { OPEN_IDENTITY, OPEN_TOPICS_IDENTITY, type Identity } from '../identity.js'
import { ProtocolError } from '../protocol.js'
import { API_KEY_IDENTITY } from './claims.js'
import { credentialsOf, sameSecret, type RequestLike } from './credentials.js'
import { AuthError, ForbiddenError, tokenError } from './errors.js'

export type TokenVerifier = (token: string) => Identity | Promise<Identity>

export interface AuthenticatorOptions<R extends RequestLike> {
  /** API_KEY: its holder is admin. */
  apiKey?: string
  /** A JWT -> its identity; rejects when the token is not acceptable. */
  verifyToken?: TokenVerifier
  /** The host's own verification of a whole request; replaces the token lookup and `verifyToken`. */
  verifyRequest?: (request: R) => Identity | Promise<Identity>
  /** The broker's revocation list. */
  isRevoked?: (jti: string) => Promise<boolean>
}

export class Authenticator<R extends RequestLike> {
  private readonly options: AuthenticatorOptions<R>

  constructor (options: AuthenticatorOptions<R>) {
    this.options = { ...options }
  }

  /** Verifies tokens with `verifyToken` from now on: the host's @fastify/jwt, found once the app is ready. */
  useTokenVerifier (verifyToken: TokenVerifier): void {
    this.options.verifyToken = verifyToken
  }

  /** No way to verify anybody: the server runs open and everybody may do everything. */
  get open (): boolean {
    return this.options.verifyToken === undefined && this.options.verifyRequest === undefined
  }

  /** Can `refresh` frames be verified? */
  get canRefresh (): boolean {
    return this.options.verifyToken !== undefined
  }

  /**
   * The caller's identity; rejects with AuthError (401), or `forbidden` (403) from a host verifier.
   * One promise per call: a verifier that answers synchronously (@fastify/jwt without a key function)
   * and a token without `jti` (nothing to look up) cost no await, so no microtask per connect.
   */
  async authenticate (request: R): Promise<Identity> {
    const apiKey = request.headers['x-api-key']
    // A configured key is checked whenever one is sent, open mode included: a wrong key is never let in.
    if (apiKey !== undefined && (!this.open || this.options.apiKey !== undefined)) return this.checkApiKey(apiKey)
    if (this.open) return this.options.apiKey === undefined ? OPEN_IDENTITY : OPEN_TOPICS_IDENTITY
    let identity = this.options.verifyRequest !== undefined
      ? await this.hostVerify(this.options.verifyRequest, request)
      : this.verifyToken(this.tokenOf(request))
    if (isPromiseLike(identity)) identity = await identity
    if (identity.jti !== undefined) await this.checkRevoked(identity.jti)
    return identity
  }

  /** The identity of a `refresh` frame's token. */
  async refresh (token: string): Promise<Identity> {
    const identity = await this.verifyToken(token)
    if (identity.jti !== undefined) await this.checkRevoked(identity.jti)
    return identity
  }

  private checkApiKey (given: string | string[]): Identity {
    const expected = this.options.apiKey
    if (typeof given !== 'string' || expected === undefined || !sameSecret(given, expected)) throw new AuthError('invalid API key')
    return API_KEY_IDENTITY
  }

  private tokenOf (request: R): string {
    const { token } = credentialsOf(request)
    if (token === undefined) throw new AuthError('missing token: send "Authorization: Bearer <token>" or ?token=<token>')
    return token
  }

  /**
   * The identity of `token`, as the verifier gives it: at once when it answers synchronously, else a
   * promise. Whatever the verifier throws or rejects with becomes an AuthError (tokenError).
   */
  private verifyToken (token: string): Identity | Promise<Identity> {
    const verify = this.options.verifyToken
    if (verify === undefined) throw new AuthError('this server cannot verify tokens')
    let identity: Identity | PromiseLike<Identity>
    try {
      identity = verify(token)
    } catch (err) {
      throw tokenError(err)
    }
    return isPromiseLike(identity) ? Promise.resolve(identity).catch(rejectAsTokenError) : identity
  }

  private async hostVerify (verify: (request: R) => Identity | Promise<Identity>, request: R): Promise<Identity> {
    try {
      return await verify(request)
    } catch (err) {
      throw hostError(err)
    }
  }

  /** Only for a token with a `jti`: one without has nothing to look up, and costs no await. */
  private async checkRevoked (jti: string): Promise<void> {
    // A broker that cannot answer makes this throw `unavailable` (503): refusing is the safe side.
    if (this.options.isRevoked !== undefined && await this.options.isRevoked(jti)) {
      throw new AuthError('token revoked')
    }
  }
}

/** A promise, or any thenable a host verifier may return. */
export function isPromiseLike<T> (value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

function rejectAsTokenError (err: unknown): never {
  throw tokenError(err)
}

/**
 * A host verifier refuses by throwing. Its message goes to the client with 401 (a missing-token 400
 * from @fastify/jwt included); a 403 stays 403, and 5xx errors (its database is down) pass through.
 */
function hostError (err: unknown): Error {
  if (err instanceof ProtocolError) return err
  const status = (err as { statusCode?: unknown })?.statusCode
  const message = (err as { message?: unknown })?.message
  const text = typeof message === 'string' && message !== '' ? message : 'invalid credentials'
  if (status === 403) return new ForbiddenError(text)
  if (typeof status === 'number' && status >= 500) return err as Error
  return new AuthError(text)
}
