// HTTP side of the errors the core raises, for the routes and the plugins alike (one module below both,
// and one error handler, set once on the realtime routes' context by plugins/realtime.ts): ProtocolError codes map to statuses, and the reply keeps
// Fastify's error shape {statusCode, code, error, message}. One vocabulary: whatever refused the
// request (our code, Fastify's body parser or validator, a host's hook or rate limiter), `code` is one
// of the protocol's error codes (ErrorCode), and the HTTP status stays the one it was raised with.
import createError from '@fastify/error'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { STATUS_CODES } from 'node:http'
import { ErrorCode, type ProtocolError } from './core/protocol.js'
import { toProtocolError } from './core/protocol-errors.js'

const STATUS: Record<ErrorCode, number> = {
  [ErrorCode.badRequest]: 400,
  [ErrorCode.unauthorized]: 401,
  [ErrorCode.forbidden]: 403,
  [ErrorCode.notFound]: 404,
  [ErrorCode.tooLarge]: 413,
  [ErrorCode.rateLimited]: 429,
  [ErrorCode.limitExceeded]: 429,
  [ErrorCode.unavailable]: 503,
  [ErrorCode.internal]: 500
}

/**
 * The errors our routes raise, in Fastify's own error shape: made by @fastify/error, as Fastify's are.
 * One class for every code and status (each error carries its own), so a refusal can keep a status
 * another part chose (a hook's 401/403/429/503, Fastify's 415) with the protocol's code.
 */
export class HttpError extends createError<[string]>('internal', '%s', 500) {
  constructor (override readonly statusCode: number, override readonly code: ErrorCode, message: string) {
    super(message)
  }
}

export function httpError (code: ErrorCode, message: string): HttpError {
  return new HttpError(STATUS[code], code, message)
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The setting a route's `bodyLimit` comes from, named in its 413 (e.g. 'MAX_PAYLOAD'). */
    bodyLimitSetting?: string
  }
}

/** The only request body type of the API (docs/protocol.md §4). */
export const JSON_CONTENT_TYPE = 'application/json'

/** The codes an error of ours may already carry; any other code (`FST_ERR_*`, a plugin's) is replaced. */
const OUR_CODES: ReadonlySet<string> = new Set(Object.values(ErrorCode))

/**
 * The protocol's code for an error raised with `status` by someone else: Fastify (validation, body
 * parsing: 400, 413, 415), a host's hook or rate limiter (429 without a code of ours), a plugin.
 */
function codeOf (status: number): ErrorCode {
  switch (status) {
    case 401: return ErrorCode.unauthorized
    case 403: return ErrorCode.forbidden
    case 404: return ErrorCode.notFound
    case 413: return ErrorCode.tooLarge
    case 429: return ErrorCode.rateLimited
    case 503: return ErrorCode.unavailable
  }
  // 415 included: a body the API does not take is a bad request, and its message says which type.
  return status >= 500 ? ErrorCode.internal : ErrorCode.badRequest
}

/**
 * Fastify's 413 and 415 say "Request body is too large" and "Unsupported Media Type": the message
 * names the limit, or the content type taken, instead.
 */
function messageOf (error: FastifyError, status: number, request: FastifyRequest): string {
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    const { bodyLimit, config } = request.routeOptions
    const limit = config.bodyLimitSetting === undefined ? `${bodyLimit} bytes` : `${config.bodyLimitSetting} (${bodyLimit} bytes)`
    return `request body larger than ${limit}`
  }
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    const sent = request.headers['content-type']
    const what = sent === undefined ? 'a body without content-type' : `content-type "${sent.slice(0, 100)}"`
    return `unsupported media type: ${what}; this API takes ${JSON_CONTENT_TYPE}`
  }
  // A validation error's message names the field (`body/topic must be string`). A hook may throw a
  // plain object with a status and no message (a host's errorResponseBuilder): the status's text then.
  return typeof error.message === 'string' && error.message !== '' ? error.message : STATUS_CODES[status] ?? 'error'
}

/**
 * Whether the request announced a body that has not all arrived: refused before it was read (the
 * rate limit, the credentials), or mid-way (too large). A GET is not complete either while its hooks
 * run in the tick its headers arrived, hence the headers.
 */
function bodyUnread (request: FastifyRequest): boolean {
  if (request.raw.complete) return false
  const { 'content-length': length, 'transfer-encoding': chunked } = request.headers
  return chunked !== undefined || (length !== undefined && length !== '0')
}

/**
 * Errors that carry an HTTP status (ours, Fastify's, a host hook's) keep it, with a code of the
 * protocol's list; the rest are ProtocolErrors (their code gives the status) or internal errors.
 */
export function realtimeErrorHandler (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  // The rest of a refused body would still be read (Node drains it to reuse the connection), holding
  // the socket for as long as the client takes to send it: closed after the answer instead.
  if (bodyUnread(request)) reply.raw.shouldKeepAlive = false
  const status = error.statusCode
  if (typeof status === 'number') {
    // Fastify answers a status outside 4xx/5xx with 500 as well.
    const valid = status >= 400 && status < 600 ? status : 500
    if (valid >= 500) request.log.error({ err: error }, 'request failed')
    if (valid === status && OUR_CODES.has(error.code) && error instanceof Error) {
      reply.code(status).send(error)
      return
    }
    reply.code(valid).send(new HttpError(valid, codeOf(valid), messageOf(error, valid, request)))
    return
  }
  const protocolError: ProtocolError = toProtocolError(error)
  if (protocolError.code === ErrorCode.internal) request.log.error({ err: error }, 'request failed')
  reply.code(STATUS[protocolError.code]).send(httpError(protocolError.code, protocolError.message))
}
