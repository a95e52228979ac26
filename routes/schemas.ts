// JSON schemas shared by the HTTP routes. Fastify's validator names the failing field in its 400.
import { ErrorCode } from '../src/core/protocol.js'
import { isValidTopic, MAX_TOPIC_LENGTH } from '../src/core/topics.js'
import { httpError } from './errors.js'

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
