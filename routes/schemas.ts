// JSON schemas shared by the HTTP routes, and the strict body check that goes with them. Every error
// names the failing field. The same schemas are published as OpenAPI 3 (routes/openapi.ts).
import { Ajv, type ErrorObject } from 'ajv'
import type { FastifySchemaCompiler } from 'fastify'
import { ErrorCode } from '../src/core/protocol.js'
import { isValidTopic, MAX_TOPIC_LENGTH } from '../src/core/topics.js'
import { httpError, HttpError } from '../src/http-errors.js'

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
 * Every error reply: Fastify's shape. Used as the 4xx/5xx response schema of our routes, which also
 * serializes errors with it (the same four fields Fastify's own error serializer writes).
 */
export const errorSchema = {
  type: 'object',
  required: ['statusCode', 'code', 'error', 'message'],
  properties: {
    statusCode: { type: 'integer' },
    // The protocol's list (ErrorCode), also for what Fastify or a host's hook refuses: no `FST_ERR_*` here.
    code: { type: 'string', enum: Object.values(ErrorCode), description: 'what went wrong, as a protocol error code (docs/protocol.md §4)' },
    error: { type: 'string', description: 'the HTTP status text' },
    message: { type: 'string', description: 'what went wrong, naming the field, limit or setting' }
  }
} as const

/** The error replies every route of ours may give; each route adds its 200. */
export const errorResponses = {
  '4xx': { ...errorSchema, description: 'refused: the message names the field, limit, content type or permission' },
  '5xx': { ...errorSchema, description: 'the broker is unavailable (503 unavailable: try again) or an internal error' }
} as const

/** An empty JSON object (`{}`), the answer of the admin actions. */
export const emptySchema = { type: 'object', properties: {}, additionalProperties: false } as const

/** The property schemas strictBody can check without the validator's help: see strictBody. */
type PropertySchema =
  | { readonly type: 'string' }
  | { readonly type: 'integer' }
  | { readonly type: 'array', readonly items: { readonly type: 'string' } }
  | { readonly type?: undefined }

export interface BodySchema {
  readonly type: 'object'
  readonly required: readonly string[]
  readonly properties: Readonly<Record<string, PropertySchema & Record<string, unknown>>>
  readonly additionalProperties: false
}

/**
 * The Ajv of our routes' bodies, whatever the host configured for Fastify's: no type coercion, no
 * removed fields, no defaults (strictBody has refused what those would have rewritten). Ajv's own
 * messages, which Fastify's validator gives too.
 */
const bodyAjv = new Ajv({ allErrors: false })

/** The longest field name quoted back in an error; a caller's typo needs no more. */
const MAX_QUOTED_FIELD = 64

/**
 * The validation of a route whose body is `schema`, as route options (`validatorCompiler`): first
 * unknown fields and fields of the wrong JSON type are refused with a 400 naming the field, then our
 * own Ajv checks the rest of the schema (missing fields, lengths, item counts). Not left to Fastify's
 * validator, because Fastify's Ajv is configured for leniency (and a host may configure its own):
 * - unknown fields: with `removeAdditional: true` (Fastify's default) `additionalProperties: false`
 *   *removes* them without a word, so `idempotency_key` for `idempotencyKey` published twice; and
 *   where Ajv does refuse them its message, `body must NOT have additional properties`, does not say
 *   which one. Ours: `body must NOT have additional property 'idempotency_key'; did you mean
 *   'idempotencyKey'?`.
 * - types: with `coerceTypes: 'array'` (Fastify's default) `"topic": 5` would publish to topic "5",
 *   `"topics": "a"` would become `["a"]` and `"expiresAt": "1700000000000"` a number: a caller's bug
 *   would silently "work".
 * Both checks run in Fastify's validation step, with no hook of their own: a preValidation hook cost
 * its own hook stage on every request (BENCHMARKS.md). The schema stays the one description of the
 * body: the OpenAPI document shows the same `additionalProperties: false`.
 */
export function strictBody (schema: BodySchema): { validatorCompiler: FastifySchemaCompiler<unknown> } {
  const fields = Object.keys(schema.properties)
  const known = new Set(fields)
  for (const [field, property] of Object.entries(schema.properties)) {
    // A type the strict check cannot check would be left to Ajv's message: refuse to define such a route.
    const checkable = property.type === undefined || property.type === 'string' || property.type === 'integer' ||
      (property.type === 'array' && property.items?.type === 'string')
    if (!checkable) throw new Error(`strictBody: body/${field} has a type it does not check`)
  }

  const properties = Object.entries(schema.properties)

  function bodyError (body: unknown): HttpError | undefined {
    // Not an object (an array, a string...): Ajv says `body must be object`.
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return
    for (const field in body) {
      if (!known.has(field)) return invalid(unknownFieldsMessage(Object.keys(body).filter(field => !known.has(field)), fields))
    }
    for (const [field, property] of properties) {
      const value = (body as Record<string, unknown>)[field]
      if (value === undefined) continue
      if (property.type === 'string' && typeof value !== 'string') return invalid(`body/${field} must be string`)
      if (property.type === 'integer' && typeof value !== 'number') return invalid(`body/${field} must be integer`)
      if (property.type === 'array') {
        if (!Array.isArray(value)) return invalid(`body/${field} must be array`)
        const i = value.findIndex(item => typeof item !== 'string')
        if (i !== -1) return invalid(`body/${field}/${i} must be string`)
      }
    }
  }

  const validateSchema = bodyAjv.compile(schema)
  // Fastify reads a failed validator's `errors` (Ajv's shape) and words them as its own validator would:
  // `body/topic must NOT have fewer than 1 characters`.
  const validateBody = Object.assign((body: unknown): boolean | { error: Error } => {
    const error = bodyError(body)
    if (error !== undefined) return { error }
    const valid = validateSchema(body)
    validateBody.errors = validateSchema.errors
    return valid
  }, { errors: null as ErrorObject[] | null | undefined })

  return {
    validatorCompiler: ({ httpPart }) => {
      if (httpPart !== 'body') throw new Error(`strictBody: validates bodies only, not ${httpPart ?? 'this part'}`)
      return validateBody
    }
  }
}

function quote (field: string): string {
  return `'${field.length > MAX_QUOTED_FIELD ? `${field.slice(0, MAX_QUOTED_FIELD)}…` : field}'`
}

/** `idempotency_key`, `IdempotencyKey` and `idempotency-key` all mean `idempotencyKey`. */
function loose (field: string): string {
  return field.toLowerCase().replace(/[-_\s]/g, '')
}

function unknownFieldsMessage (unknown: string[], fields: string[]): string {
  const named = unknown.length === 1
    ? `body must NOT have additional property ${quote(unknown[0])}`
    : `body must NOT have additional properties ${unknown.slice(0, 5).map(quote).join(', ')}${unknown.length > 5 ? ', …' : ''}`
  const meant = unknown.map(field => fields.find(known => loose(known) === loose(field)))
  const hint = unknown.length === 1 && meant[0] !== undefined
    ? `did you mean ${quote(meant[0])}?`
    : `the fields are ${fields.join(', ')}`
  return `${named}; ${hint}`
}

function invalid (message: string): HttpError {
  return httpError(ErrorCode.badRequest, message)
}
