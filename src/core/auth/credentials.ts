// Where a caller's credentials are: `Authorization: Bearer <jwt>`, `?token=<jwt>` (browsers cannot set
// headers on a websocket), or `X-API-Key`. Framework-light: it reads a request's headers and query.
import { createHash, timingSafeEqual } from 'node:crypto'
import { AuthError } from './errors.js'

export interface RequestLike {
  headers: Record<string, string | string[] | undefined>
  query?: unknown
}

export interface Credentials {
  token?: string
  apiKey?: string
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i

function single (value: string | string[] | undefined, name: string): string | undefined {
  if (Array.isArray(value)) throw new AuthError(`send one ${name}, not several`)
  return value === undefined || value === '' ? undefined : value
}

/** The credentials the request carries; throws AuthError when they are there but unusable. */
export function credentialsOf (request: RequestLike): Credentials {
  const apiKey = single(request.headers['x-api-key'], 'X-API-Key header')
  const authorization = single(request.headers.authorization, 'Authorization header')
  const query = request.query as Record<string, unknown> | undefined
  const queryToken = query?.token
  if (Array.isArray(queryToken)) throw new AuthError('send one ?token= parameter, not several')
  if (authorization !== undefined) {
    const match = BEARER.exec(authorization)
    if (match !== null) return { token: match[1], apiKey }
    // Another scheme (e.g. a proxy's Basic auth) is not ours; it only matters when there is no token.
    if (typeof queryToken !== 'string' || queryToken === '') {
      if (apiKey !== undefined) return { apiKey }
      throw new AuthError('the Authorization header must be "Bearer <token>"')
    }
  }
  if (typeof queryToken === 'string' && queryToken !== '') return { token: queryToken, apiKey }
  return { apiKey }
}

/** Compares in constant time (over digests, so the length does not leak either). */
export function sameSecret (given: string, expected: string): boolean {
  const digest = (value: string): Buffer => createHash('sha256').update(value).digest()
  return timingSafeEqual(digest(given), digest(expected))
}
