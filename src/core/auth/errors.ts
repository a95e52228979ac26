// Authentication failures. They are ProtocolErrors with the `unauthorized` code, so the HTTP error
// handler answers 401 and the dispatcher sends an `unauthorized` error frame, without either knowing
// about tokens. Messages say what is wrong with the credentials, never what they contain.
import { ErrorCode, ProtocolError } from '../protocol.js'

export class AuthError extends ProtocolError {
  /** For hosts that use the auth plugin without our routes: Fastify's own error handler reads it. */
  readonly statusCode = 401

  constructor (message: string) {
    super(ErrorCode.unauthorized, message)
  }
}

/** A verifier that knows the caller and refuses them (a host's `verify` throwing a 403). */
export class ForbiddenError extends ProtocolError {
  readonly statusCode = 403

  constructor (message: string) {
    super(ErrorCode.forbidden, message)
  }
}

/** fast-jwt's error codes (the verifier @fastify/jwt wraps), in words a client developer can act on. */
const TOKEN_ERRORS: Record<string, string> = {
  FAST_JWT_MALFORMED: 'malformed token: expected a JWT (three base64url parts separated by dots)',
  FAST_JWT_INVALID_TYPE: 'malformed token',
  FAST_JWT_INVALID_PAYLOAD: 'malformed token: the payload must be a JSON object',
  FAST_JWT_INVALID_SIGNATURE: 'invalid token signature',
  FAST_JWT_MISSING_SIGNATURE: 'unsigned tokens (alg "none") are refused',
  FAST_JWT_INVALID_ALGORITHM: 'token algorithm not accepted by this server',
  FAST_JWT_EXPIRED: 'token expired',
  FAST_JWT_INACTIVE: 'token not yet valid (nbf is in the future)',
  FAST_JWT_INVALID_CRIT_HEADER: 'token has an unsupported critical header'
}

/** Turns whatever the JWT verifier threw into an AuthError with a clear message. */
export function tokenError (err: unknown): AuthError {
  if (err instanceof AuthError) return err
  const code = (err as { code?: unknown })?.code
  const message = (err as { message?: unknown })?.message
  if (typeof code === 'string' && code in TOKEN_ERRORS) return new AuthError(TOKEN_ERRORS[code])
  // Claim checks: iss/aud values (fast-jwt names the claim in its message) and required claims.
  if ((code === 'FAST_JWT_INVALID_CLAIM_VALUE' || code === 'FAST_JWT_INVALID_CLAIM_TYPE' || code === 'FAST_JWT_MISSING_REQUIRED_CLAIM') && typeof message === 'string') {
    return new AuthError(`invalid token: ${claimMessage(message)}`)
  }
  return new AuthError('invalid token')
}

function claimMessage (message: string): string {
  if (/\biss\b/.test(message)) return message.includes('required') ? 'the iss claim is required' : 'wrong issuer (iss)'
  if (/\baud\b/.test(message)) return message.includes('required') ? 'the aud claim is required' : 'wrong audience (aud)'
  // fast-jwt's own sentences ("The exp claim must be a number.") name only the claim, never its value.
  return message.replace(/^The /, 'the ').replace(/\.$/, '')
}
