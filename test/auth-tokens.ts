// Minting JWTs by hand with node:crypto, so tests can also build the tokens no library would sign:
// alg none, HS256 keyed with a public key, wrong claims.
import { createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'

export const SECRET = 'test-secret-that-is-at-least-32-bytes-long'

export type Claims = Record<string, unknown>

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
export const nowSeconds = (): number => Math.floor(Date.now() / 1000)

export interface MintOptions {
  alg?: 'HS256' | 'RS256' | 'ES256' | 'none'
  /** HMAC secret (string) or private key (RS256/ES256). */
  key?: string | KeyObject
}

/** A signed JWT; `exp` defaults to one minute from now unless the claims set it (null removes it). */
export function mint (claims: Claims, options: MintOptions = {}): string {
  const alg = options.alg ?? 'HS256'
  const payload: Claims = { iat: nowSeconds(), exp: nowSeconds() + 60, ...claims }
  for (const [name, value] of Object.entries(payload)) if (value === null) delete payload[name]
  const input = `${b64({ alg, typ: 'JWT' })}.${b64(payload)}`
  return `${input}.${signature(input, alg, options.key ?? SECRET)}`
}

function signature (input: string, alg: NonNullable<MintOptions['alg']>, key: string | KeyObject): string {
  switch (alg) {
    case 'none': return ''
    case 'HS256': return createHmac('sha256', key).update(input).digest('base64url')
    case 'RS256': return sign('sha256', Buffer.from(input), key as KeyObject).toString('base64url')
    case 'ES256': return sign('sha256', Buffer.from(input), { key: key as KeyObject, dsaEncoding: 'ieee-p1363' }).toString('base64url')
  }
}

export function rsaKeys (): { privateKey: KeyObject, publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() }
}

export function ecKeys (): { privateKey: KeyObject, publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() }
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })
