// How long a revocation is kept. A revoked token only needs refusing until it expires; the admin API
// takes that moment as `expiresAt`, and without it assumes the longest lifetime a realtime token is
// expected to have.

/** The assumed maximum token lifetime: a revocation without `expiresAt` lasts this long (7 days). */
export const DEFAULT_REVOCATION_MS = 7 * 24 * 60 * 60 * 1000

/** Below this, an `expiresAt` is almost certainly a JWT `exp` in seconds (this is Sept 2001 in ms). */
export const MIN_EXPIRES_AT_MS = 1_000_000_000_000

/** Until when to refuse a token revoked now. */
export function revocationUntil (expiresAt: number | undefined, now = Date.now()): number {
  return expiresAt ?? now + DEFAULT_REVOCATION_MS
}
