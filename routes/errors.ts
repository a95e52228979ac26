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

/** Errors that already carry a status (Fastify's, validation, HttpError) pass through unchanged. */
export function realtimeErrorHandler (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  if (typeof error.statusCode === 'number') {
    if (error.statusCode >= 500) request.log.error({ err: error }, 'request failed')
    reply.code(error.statusCode).send(error)
    return
  }
  const protocolError: ProtocolError = toProtocolError(error)
  if (protocolError.code === ErrorCode.internal) request.log.error({ err: error }, 'request failed')
  reply.code(STATUS[protocolError.code]).send(httpError(protocolError.code, protocolError.message))
}
