// HS256 tokens minted with node:crypto, as a backend would issue them.
import { createHmac } from 'node:crypto'

export function mintToken (secret, claims) {
  const part = object => Buffer.from(JSON.stringify(object)).toString('base64url')
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`
}

/**
 * The `Authorization` header value of the HTTP publish load (bench/publish.lua's topic): one caller,
 * not an admin (admins skip our rate limit), allowed to publish to public.bench.*, valid for a day.
 */
export function publisherAuthorization (secret) {
  const claims = { sub: 'bench-publisher', topics: { publish: ['public.bench.>'] }, exp: Math.floor(Date.now() / 1000) + 86400 }
  return `Bearer ${mintToken(secret, claims)}`
}
