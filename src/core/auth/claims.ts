// A verified token's claims -> the Identity the core works with (docs/protocol.md §3). Shapes are checked
// here, so a token with `topics: "everything"` is refused with a clear message instead of granting or
// denying by accident.
import type { Identity } from '../identity.js'
import { isValidPattern } from '../topics.js'
import { AuthError } from './errors.js'

export interface AclDefaults {
  /** DEFAULT_SUBSCRIBE: the patterns of a token without `topics.subscribe`. */
  defaultSubscribe: readonly string[]
  /** DEFAULT_PUBLISH: the patterns of a token without `topics.publish`. */
  defaultPublish: readonly string[]
}

/** The identity of a caller that presented the API key: admin, no user. */
export const API_KEY_IDENTITY: Identity = Object.freeze({ user: null, admin: true, subscribe: [], publish: [], expiresAt: null })

function patternList (topics: Record<string, unknown>, key: 'subscribe' | 'publish', fallback: readonly string[]): readonly string[] {
  const value = topics[key]
  // Each list falls back to its default on its own: a token that only narrows subscribe keeps the
  // default publish rights. An empty array means "none".
  if (value === undefined) return fallback
  if (!Array.isArray(value)) throw new AuthError(`invalid token: the topics.${key} claim must be an array of topic patterns`)
  value.forEach((pattern, i) => {
    if (typeof pattern !== 'string' || !isValidPattern(pattern)) {
      throw new AuthError(`invalid token: topics.${key}[${i}] is not a valid topic pattern`)
    }
  })
  return value as string[]
}

/** Builds the Identity of verified `claims`; throws AuthError when a claim has the wrong shape. */
export function identityFromClaims (claims: Record<string, unknown>, defaults: AclDefaults): Identity {
  const { sub, topics, admin, jti, exp } = claims
  if (sub !== undefined && (typeof sub !== 'string' || sub === '')) throw new AuthError('invalid token: the sub claim must be a non-empty string')
  if (jti !== undefined && (typeof jti !== 'string' || jti === '')) throw new AuthError('invalid token: the jti claim must be a non-empty string')
  if (admin !== undefined && typeof admin !== 'boolean') throw new AuthError('invalid token: the admin claim must be true or false')
  if (topics !== undefined && (topics === null || typeof topics !== 'object' || Array.isArray(topics))) {
    throw new AuthError('invalid token: the topics claim must be an object {subscribe, publish}')
  }
  const topicClaims = (topics ?? {}) as Record<string, unknown>
  const identity: Identity = {
    user: sub ?? null,
    admin: admin === true,
    subscribe: patternList(topicClaims, 'subscribe', defaults.defaultSubscribe),
    publish: patternList(topicClaims, 'publish', defaults.defaultPublish),
    // The verifier has already refused a non-numeric exp.
    expiresAt: typeof exp === 'number' ? exp * 1000 : null
  }
  if (jti !== undefined) identity.jti = jti
  return identity
}
