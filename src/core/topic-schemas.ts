// Declared topics (docs/topics.md): topic patterns mapped to a description and a JSON Schema of the
// `data` published to them. Every publish path (HTTP, websocket, app.realtime) goes through
// RealtimeNode.publish, which asks TopicSchemas.check: one compiled Ajv validator per pattern, built
// when the declarations are first checked (at start), and a bounded cache from topic to declaration,
// so a publish costs a Map lookup and the validator. Nothing of this exists when nothing is declared.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import formats, { type FormatsPlugin } from 'ajv-formats'
import { ErrorCode, ProtocolError } from './protocol.js'
import { costlyKeyword } from './topic-schemas-cost.js'
import { TOPIC_SEGMENT } from './topics.js'

/** One declared topic pattern. */
export interface TopicDeclaration {
  /** What the topic carries, for people (the AsyncAPI document shows it). */
  description?: string
  /**
   * JSON Schema (draft-07, as Fastify's Ajv takes it) of the `data` published to matching topics; a
   * TypeBox schema is one. Absent: any JSON value (the topic is declared, its payload is not checked).
   */
  schema?: object | boolean
}

/** Topic pattern -> declaration, e.g. `{ "orders.{id}": { description, schema } }`. */
export type TopicDeclarations = Record<string, TopicDeclaration>

/** The `data` published to a declared topic does not match its schema: `bad_request`, 400, a throw. */
export class TopicPayloadError extends ProtocolError {
  override readonly name = 'TopicPayloadError'

  constructor (
    /** The topic published to. */
    readonly topic: string,
    /** The declared pattern whose schema refused the data. */
    readonly pattern: string,
    /** Where in the request the failing value is, e.g. `body/data/total` (Ajv's instancePath after the data's own path). */
    readonly path: string,
    message: string
  ) {
    super(ErrorCode.badRequest, message)
  }
}

/** A declaration that cannot be used (bad pattern, bad schema): the caller turns it into a ConfigError. */
export class TopicDeclarationError extends Error {
  override readonly name = 'TopicDeclarationError'
}

// ---- patterns: ACL patterns (`*`, a final `>`) plus named segments `{id}` ----

const NAMED = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/
/** How specific a segment is: the most specific matching declaration wins (docs/topics.md). */
const Rank = { rest: 0, one: 1, literal: 2 } as const
type Rank = (typeof Rank)[keyof typeof Rank]

interface Segment { rank: Rank, literal?: string, name?: string }

/** The segments of a declared pattern, or a TopicDeclarationError saying what is wrong with it. */
export function parseTopicPattern (pattern: string): Segment[] {
  const parts = pattern.split('.')
  const names = new Set<string>()
  return parts.map((part, i) => {
    if (part === '*') return { rank: Rank.one }
    if (part === '>') {
      if (i !== parts.length - 1) throw new TopicDeclarationError(`"${pattern}" has ">" before its last segment`)
      return { rank: Rank.rest }
    }
    const named = NAMED.exec(part)
    if (named !== null) {
      if (names.has(named[1])) throw new TopicDeclarationError(`"${pattern}" names the segment {${named[1]}} twice`)
      names.add(named[1])
      return { rank: Rank.one, name: named[1] }
    }
    if (!TOPIC_SEGMENT.test(part)) {
      throw new TopicDeclarationError(`"${pattern.slice(0, 300)}" is not a topic pattern: segments are [A-Za-z0-9_-:@]+, *, {name} or a final >`)
    }
    return { rank: Rank.literal, literal: part }
  })
}

function matches (segments: readonly Segment[], topic: readonly string[]): boolean {
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]
    if (segment.rank === Rank.rest) return topic.length > i
    if (i >= topic.length) return false
    if (segment.rank === Rank.literal && segment.literal !== topic[i]) return false
  }
  return segments.length === topic.length
}

/** Left to right, a literal segment beats `*`/`{name}`, which beats `>`; equal ones: declared first. */
function moreSpecificFirst (a: Segment[], b: Segment[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i].rank !== b[i].rank) return b[i].rank - a[i].rank
  }
  return b.length - a.length
}

// ---- the declarations, compiled ----

/** A declared pattern with its validator (undefined: any data). */
export interface DeclaredTopic {
  pattern: string
  description?: string
  schema?: object | boolean
  /** The names of its `{name}` segments, in order. */
  parameters: string[]
  readonly validate?: ValidateFunction
  readonly segments: Segment[]
}

const DECLARATION_KEYS = new Set(['description', 'schema'])
/** Topics remembered with their declaration; past this the cache starts over (topic names are unbounded). */
const CACHE_LIMIT = 10_000
/** Bounds of an error message: a schema's path or message can be long, and the message goes to clients. */
const MAX_PATH = 200
const MAX_MESSAGE = 200

function describeValue (value: unknown): string {
  return Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value
}

function declaredTopic (pattern: string, declaration: unknown, ajv: Ajv): DeclaredTopic {
  if (typeof declaration !== 'object' || declaration === null || Array.isArray(declaration)) {
    throw new TopicDeclarationError(`"${pattern}" must be an object {description?, schema?}, got ${describeValue(declaration)}`)
  }
  const unknown = Object.keys(declaration).filter(key => !DECLARATION_KEYS.has(key))
  if (unknown.length > 0) throw new TopicDeclarationError(`"${pattern}" has unknown field(s) ${unknown.map(key => `"${key.slice(0, 50)}"`).join(', ')}; a declaration has description and schema`)
  const { description, schema } = declaration as TopicDeclaration
  if (description !== undefined && typeof description !== 'string') throw new TopicDeclarationError(`"${pattern}" has a description that is not a string`)
  if (schema !== undefined && typeof schema !== 'boolean' && (typeof schema !== 'object' || schema === null || Array.isArray(schema))) {
    throw new TopicDeclarationError(`"${pattern}" has a schema that is ${describeValue(schema)}; a JSON Schema is an object (or true/false)`)
  }
  const segments = parseTopicPattern(pattern)
  let validate: ValidateFunction | undefined
  if (schema !== undefined) {
    try {
      validate = ajv.compile(schema)
    } catch (err) {
      throw new TopicDeclarationError(`"${pattern}" has an invalid schema: ${(err as Error).message.slice(0, 300)}`)
    }
    // A schema whose check can stall the event loop on one publish (topic-schemas-cost.ts).
    const costly = costlyKeyword(schema)
    if (costly !== undefined) throw new TopicDeclarationError(`"${pattern}" has a schema whose ${costly}`)
  }
  return { pattern, description, schema, parameters: segments.flatMap(s => s.name === undefined ? [] : [s.name]), validate, segments }
}

/**
 * One Ajv per set of declarations (and one for RPC methods, rpc.ts): strict (a typo in a schema is an
 * error, not a keyword ignored), no coercion.
 */
export function newAjv (): Ajv {
  const ajv = new Ajv({ strict: true, allowUnionTypes: true, allErrors: false, coerceTypes: false, useDefaults: false, removeAdditional: false })
  // ajv-formats is CommonJS and sets `exports.default` to the plugin: the same function under either loader.
  const addFormats = (formats as unknown as { default: FormatsPlugin }).default
  addFormats(ajv)
  return ajv
}

export class TopicSchemas {
  /** In declaration order (the AsyncAPI document lists them so). */
  readonly declared: readonly DeclaredTopic[]
  /** Most specific first: the first match is the declaration that applies. */
  private readonly bySpecificity: readonly DeclaredTopic[]
  private readonly cache = new Map<string, DeclaredTopic | null>()

  /** Throws TopicDeclarationError naming the pattern when a declaration cannot be used. */
  constructor (declarations: TopicDeclarations, readonly strict: boolean) {
    this.declared = compileDeclarations(declarations)
    // Array.prototype.sort is stable: equally specific patterns keep their declaration order.
    this.bySpecificity = [...this.declared].sort((a, b) => moreSpecificFirst(a.segments, b.segments))
  }

  /** The declaration that applies to `topic` (the most specific match), or undefined. */
  find (topic: string): DeclaredTopic | undefined {
    const cached = this.cache.get(topic)
    if (cached !== undefined) return cached ?? undefined
    const segments = topic.split('.')
    const found = this.bySpecificity.find(declared => matches(declared.segments, segments)) ?? null
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear()
    this.cache.set(topic, found)
    return found ?? undefined
  }

  /** STRICT_TOPICS: a topic that matches no declaration is refused (`bad_request`). */
  requireDeclared (topic: string): void {
    if (this.strict && this.find(topic) === undefined) {
      throw new ProtocolError(ErrorCode.badRequest, `topic "${topic}" matches no declared topic (STRICT_TOPICS)`)
    }
  }

  /**
   * Throws TopicPayloadError when `data` does not match the schema declared for `topic` (and, under
   * STRICT_TOPICS, a `bad_request` when nothing is declared for it). `dataPath` is where the data sits
   * in the request, for the message: `data` (a websocket frame, app.realtime), `body/data` (HTTP).
   */
  check (topic: string, data: unknown, dataPath = 'data'): void {
    const declared = this.find(topic)
    if (declared === undefined) {
      if (this.strict) this.requireDeclared(topic)
      return
    }
    const validate = declared.validate
    if (validate === undefined || validate(data)) return
    const error = validate.errors?.[0]
    const path = `${dataPath}${(error?.instancePath ?? '').slice(0, MAX_PATH)}`
    throw new TopicPayloadError(topic, declared.pattern, path,
      `${path} ${explain(error).slice(0, MAX_MESSAGE)} (topic "${topic}" is declared as "${declared.pattern}")`)
  }
}

/** Ajv's message, with the property it is about where Ajv leaves it in `params` (Fastify does the same). */
export function explain (error: ErrorObject | undefined): string {
  if (error === undefined) return 'does not match the declared schema'
  const message = error.message ?? 'does not match the declared schema'
  if (error.keyword === 'additionalProperties') return `${message} '${String(error.params.additionalProperty).slice(0, 50)}'`
  if (error.keyword === 'enum') return `${message}: ${JSON.stringify(error.params.allowedValues).slice(0, 100)}`
  return message
}

/**
 * The validators of a set of declarations, compiled once per declarations object: the config check
 * (at start, so that a bad schema fails there) and the node ask for them, and get the same ones.
 */
const compiled = new WeakMap<object, readonly DeclaredTopic[]>()

/** Checks and compiles `declarations`; throws TopicDeclarationError naming the pattern at fault. */
export function compileDeclarations (declarations: unknown): readonly DeclaredTopic[] {
  if (typeof declarations !== 'object' || declarations === null || Array.isArray(declarations)) {
    throw new TopicDeclarationError(`must be an object mapping topic patterns to {description?, schema?}, got ${describeValue(declarations)}`)
  }
  const known = compiled.get(declarations)
  if (known !== undefined) return known
  const ajv = newAjv()
  const declared = Object.entries(declarations).map(([pattern, declaration]) => declaredTopic(pattern, declaration, ajv))
  compiled.set(declarations, declared)
  return declared
}
