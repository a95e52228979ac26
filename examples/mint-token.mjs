// Mints an HS256 JWT with nothing but Node: JWT_SECRET=... node examples/mint-token.mjs <sub> [seconds]
// Any JWT library does the same (HS256, the server's JWT_SECRET). See docs/protocol.md §3 for claims.
import { createHmac, randomUUID } from 'node:crypto'

const secret = process.env.JWT_SECRET
if (!secret) {
  console.error('set JWT_SECRET to the server\'s secret')
  process.exit(1)
}
const sub = process.argv[2] ?? 'alice'
const lifetime = Number(process.argv[3] ?? 3600)
const now = Math.floor(Date.now() / 1000)
const b64 = json => Buffer.from(JSON.stringify(json)).toString('base64url')
const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, iat: now, exp: now + lifetime, jti: randomUUID() })}`
console.log(`${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`)
