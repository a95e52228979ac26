// Who a connection or HTTP caller is and what it may do. The auth plugin builds an Identity from a
// verified token; the core only asks it questions.
import { matchesAny } from './topics.js'

export interface Identity {
  /** The token's `sub`; null for anonymous callers (open mode, API key). */
  user: string | null
  /** `admin: true` (or the API key): every topic and the admin API. */
  admin: boolean
  /** Topic patterns this identity may subscribe to (and read history/presence of). */
  subscribe: readonly string[]
  publish: readonly string[]
  /** When the token expires, ms since epoch; null when it never does. */
  expiresAt: number | null
  /** The token's `jti`, which makes it revocable. */
  jti?: string
}

/** The identity everyone has when no JWT key is configured: the server runs open. */
export const OPEN_IDENTITY: Identity = Object.freeze({ user: null, admin: true, subscribe: [], publish: [], expiresAt: null })

/**
 * Open mode with an API_KEY: every topic for everyone, but the admin API (revoke, disconnect, info)
 * only with the key. Setting a key must secure what it names, JWT or not.
 */
export const OPEN_TOPICS_IDENTITY: Identity = Object.freeze({ user: null, admin: false, subscribe: ['>'], publish: ['>'], expiresAt: null })

export function canSubscribe (identity: Identity, topic: string): boolean {
  return identity.admin || matchesAny(identity.subscribe, topic, identity.user)
}

export function canPublish (identity: Identity, topic: string): boolean {
  return identity.admin || matchesAny(identity.publish, topic, identity.user)
}
