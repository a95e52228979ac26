// HS256 tokens minted with node:crypto, as a backend would issue them.
import { createHmac } from 'node:crypto'

export function mintToken (secret, claims) {
  const part = object => Buffer.from(JSON.stringify(object)).toString('base64url')
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`
}
