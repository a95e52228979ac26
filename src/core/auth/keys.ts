// Which key verifies tokens, and with which algorithms (docs/protocol.md §3). The algorithm list is pinned
// from the key, never taken from the token: a token's `alg` can only pick among these. That is what
// refuses `alg: none` and algorithm confusion (an HS256 token "signed" with the RSA public key as
// its HMAC secret): with a public key configured, HS256 is simply not on the list.
import { createPublicKey } from 'node:crypto'
import { ConfigError, type Config } from '../../config.js'

export type Algorithm = 'HS256' | 'RS256' | 'ES256'

export interface VerificationKey {
  /** The HMAC secret or the PEM public key. */
  key: string
  algorithms: Algorithm[]
  /** Expected `iss` and `aud`; when set, the claim is also required. */
  issuer?: string
  audience?: string
}

/** Shorter HS256 secrets can be brute-forced offline from one captured token. */
export const MIN_SECRET_BYTES = 32

type KeyConfig = Pick<Config, 'jwtSecret' | 'jwtPublicKey' | 'jwtIssuer' | 'jwtAudience'>

/** The verification key of `config`, or undefined when none is configured (open mode). */
export function verificationKey (config: KeyConfig): VerificationKey | undefined {
  const claims = { issuer: config.jwtIssuer, audience: config.jwtAudience }
  if (config.jwtSecret !== undefined) return { key: config.jwtSecret, algorithms: ['HS256'], ...claims }
  if (config.jwtPublicKey !== undefined) return { key: config.jwtPublicKey, algorithms: [publicKeyAlgorithm(config.jwtPublicKey)], ...claims }
  return undefined
}

function publicKeyAlgorithm (pem: string): Algorithm {
  let details
  try {
    const key = createPublicKey(pem)
    details = { type: key.asymmetricKeyType, curve: key.asymmetricKeyDetails?.namedCurve }
  } catch (err) {
    throw new ConfigError('JWT_PUBLIC_KEY', `is not a PEM public key (${(err as Error).message})`)
  }
  if (details.type === 'rsa') return 'RS256'
  if (details.type === 'ec' && details.curve === 'prime256v1') return 'ES256'
  throw new ConfigError('JWT_PUBLIC_KEY', `must be an RSA key (RS256) or a P-256 EC key (ES256), got ${details.type ?? 'unknown'}${details.curve === undefined ? '' : ` ${details.curve}`}`)
}

/** fast-jwt's verifier options for `key`. */
export function verifierOptions (key: VerificationKey): Record<string, unknown> {
  const requiredClaims = [
    ...(key.issuer === undefined ? [] : ['iss']),
    ...(key.audience === undefined ? [] : ['aud'])
  ]
  return {
    algorithms: key.algorithms,
    // fast-jwt only checks iss/aud when the token carries them; a configured one must be present.
    ...(requiredClaims.length === 0 ? {} : { requiredClaims }),
    ...(key.issuer === undefined ? {} : { allowedIss: key.issuer }),
    ...(key.audience === undefined ? {} : { allowedAud: key.audience })
  }
}
