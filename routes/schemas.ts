// JSON schemas shared by the HTTP routes. Fastify's validator names the failing field in its 400.
import type { FastifyRequest } from 'fastify'
import { ErrorCode } from '../src/core/protocol.js'
import { isValidTopic, MAX_TOPIC_LENGTH } from '../src/core/topics.js'
import { httpError, HttpError } from './errors.js'

/** The schema checks type and length; the routes check the syntax with a clearer message (assertTopic). */
export const topicSchema = { type: 'string', minLength: 1, maxLength: MAX_TOPIC_LENGTH } as const

/** Throws a 400 that names the field when `topic` is not a valid topic name. */
export function assertTopic (field: string, topic: string): void {
  if (!isValidTopic(topic)) {
    throw httpError(ErrorCode.badRequest, `${field} "${topic}" is not a valid topic: dot-separated segments of [A-Za-z0-9_-:@], at most ${MAX_TOPIC_LENGTH} characters`)
  }
}

export const positionSchema = {
  type: 'object',
  required: ['topic', 'epoch', 'offset'],
  properties: { topic: { type: 'string' }, epoch: { type: 'string' }, offset: { type: 'integer' } }
} as const

/**
 * A preValidation hook that refuses body fields of the wrong JSON type. Fastify's validator coerces
 * types by default (`coerceTypes: 'array'`, and a host may configure it), so without this
 * `"topic": 5` would publish to topic "5" and `"topics": "a"` would become `["a"]`: a caller's bug
 * would silently "work". Missing fields and the rest of the schema are left to the validator.
 */
export function exactBodyTypes (fields: Record<string, 'string' | 'string[]'>) {
  return async function checkTypes (request: FastifyRequest): Promise<void> {
    const body = request.body
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return
    for (const [field, type] of Object.entries(fields)) {
      const value = (body as Record<string, unknown>)[field]
      if (value === undefined) continue
      if (type === 'string' && typeof value !== 'string') throw invalidType(`body/${field} must be string`)
      if (type === 'string[]') {
        if (!Array.isArray(value)) throw invalidType(`body/${field} must be array`)
        const i = value.findIndex(item => typeof item !== 'string')
        if (i !== -1) throw invalidType(`body/${field}/${i} must be string`)
      }
    }
  }
}

function invalidType (message: string): HttpError {
  return new HttpError(400, 'FST_ERR_VALIDATION', message)
}
