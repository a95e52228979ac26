// HTTP side of the errors the core raises: ProtocolError codes map to statuses, and the reply keeps
// Fastify's error shape {statusCode, code, error, message}.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { toProtocolError } from '../src/core/dispatcher.js'
import { ErrorCode, type ProtocolError } from '../src/core/protocol.js'

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

export class HttpError extends Error {
  constructor (readonly statusCode: number, readonly code: string, message: string) {
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

/**
 * Fastify's 413 and 415 say "Request body is too large" and "Unsupported Media Type": the same
 * errors (status and code unchanged) with a message that names the limit, or the content type taken.
 */
function explained (error: FastifyError, request: FastifyRequest): FastifyError | HttpError {
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    const { bodyLimit, config } = request.routeOptions
    const limit = config.bodyLimitSetting === undefined ? `${bodyLimit} bytes` : `${config.bodyLimitSetting} (${bodyLimit} bytes)`
    return new HttpError(413, error.code, `request body larger than ${limit}`)
  }
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    const sent = request.headers['content-type']
    const what = sent === undefined ? 'a body without content-type' : `content-type "${sent.slice(0, 100)}"`
    return new HttpError(415, error.code, `unsupported media type: ${what}; this API takes ${JSON_CONTENT_TYPE}`)
  }
  return error
}

/** Errors that already carry a status (Fastify's, validation, HttpError) keep it; 413 and 415 are explained. */
export function realtimeErrorHandler (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  if (typeof error.statusCode === 'number') {
    if (error.statusCode >= 500) request.log.error({ err: error }, 'request failed')
    reply.code(error.statusCode).send(explained(error, request))
    return
  }
  const protocolError: ProtocolError = toProtocolError(error)
  if (protocolError.code === ErrorCode.internal) request.log.error({ err: error }, 'request failed')
  reply.code(STATUS[protocolError.code]).send(httpError(protocolError.code, protocolError.message))
}
