// The wire protocol (docs/protocol.md §2): parsing and validating client frames, encoding server
// frames, error codes, and the close codes with the reason sent for each. Everything that touches the
// JSON shape of a frame, or what a client reads when it is closed, lives here.
import { isValidTopic } from './topics.js'
import { CloseCode, ErrorCode, type RequestId, type StreamPosition, type Welcome } from './wire.js'

// The codes and shapes the client library reads too live in wire.ts; the server imports them from here.
export { CloseCode, ErrorCode }
export type { RequestId, StreamPosition, Welcome }

// A numeric enum's object also maps each number back to its name: only the numbers are codes.
const SERVER_CLOSE_CODES: ReadonlySet<unknown> = new Set(Object.values(CloseCode).filter(value => typeof value === 'number'))

/**
 * The `code` label of realtime_disconnects_total (docs/protocol.md §8): a peer chooses its own close
 * code, so only the codes this server sends and the standard ones (1000-1015) are kept as they are;
 * any other is counted by its class, `3xxx` (registered), `4xxx` (private use) or `other`, and
 * a client cannot make one series per code.
 */
export function closeCodeLabel (code: number): string {
  if (SERVER_CLOSE_CODES.has(code) || (code >= 1000 && code <= 1015)) return String(code)
  if (code >= 3000 && code <= 3999) return '3xxx'
  if (code >= 4000 && code <= 4999) return '4xxx'
  return 'other'
}

/** What this server sends when it closes a websocket: the code, and the reason the client reads. */
export interface CloseCause {
  readonly code: number
  readonly reason: string
}

/** RFC 6455 leaves 123 bytes for a close reason; ws throws on a longer one instead of sending it. */
export const MAX_CLOSE_REASON_BYTES = 123

/** `text` cut to fit a close reason, on a character boundary (half a UTF-8 sequence is refused too). */
export function closeReason (text: string): string {
  const bytes = Buffer.from(text)
  if (bytes.length <= MAX_CLOSE_REASON_BYTES) return text
  return bytes.subarray(0, MAX_CLOSE_REASON_BYTES).toString().replace(/\uFFFD$/, '')
}

/** The close code of an upgrade refused with `status`: 4000 + the status, but 1011 for a 500. */
function refusalCloseCode (status: number): number {
  return status >= 400 && status <= 599 && status !== 500 ? 4000 + status : CloseCode.internal
}

/**
 * Every cause for which this server closes a websocket, with the code and reason it sends
 * (docs/protocol.md §2, "Close codes"). Call sites name the cause, so a code and its reason cannot
 * drift apart; the causes that carry a detail build their reason, cut to fit a close frame.
 */
export const ServerClose = {
  /** The graceful drain: reconnect to another node and recover. */
  shuttingDown: { code: CloseCode.goingAway, reason: 'server shutting down' },
  /** The token expired without a `refresh`. */
  tokenExpired: { code: CloseCode.tokenExpired, reason: 'token expired' },
  /** The admin API revoked the connection's token (its `jti`). */
  tokenRevoked: { code: CloseCode.forbidden, reason: 'token revoked' },
  /** The admin API disconnected the connection's user. */
  disconnected: { code: CloseCode.forbidden, reason: 'disconnected by the server' },
  /** MESSAGE_BURST frames in a row refused by the message rate limit. */
  rateLimitExceeded: { code: CloseCode.rateLimited, reason: 'message rate limit exceeded repeatedly' },
  inboundRateExceeded: { code: CloseCode.rateLimited, reason: 'inbound byte rate limit exceeded repeatedly' },
  /** More than SEND_BUFFER_LIMIT bytes queued for a client that does not read. */
  slowConsumer: { code: CloseCode.slowConsumer, reason: 'slow consumer: send buffer over its limit' },
  /** A frame over MAX_PAYLOAD that ws let through (a host's @fastify/websocket allows more). */
  frameTooLarge: (maxPayload: number): CloseCause =>
    ({ code: CloseCode.tooLarge, reason: `frame larger than MAX_PAYLOAD (${maxPayload} bytes)` }),
  /** A subscribed topic skipped offsets this node can no longer fetch (e.g. a long Redis outage). */
  missedPublications: (topic: string): CloseCause =>
    ({ code: CloseCode.insufficientState, reason: closeReason(`missed publications on "${topic}": reconnect and recover`) }),
  /**
   * An upgrade refused under `?refusal=close`: 4401, 4403, 4429 or 4503 with the refusal's message;
   * an internal failure (500) is 1011 with no detail.
   */
  upgradeRefused: (status: number, message: string): CloseCause => status === 500
    ? { code: CloseCode.internal, reason: 'internal error' }
    : { code: refusalCloseCode(status), reason: closeReason(message) }
} as const

/** An error that answers one client request; `code` goes on the wire. */
export class ProtocolError extends Error {
  constructor (readonly code: ErrorCode, message: string) {
    super(message)
  }
}

export type ClientFrame =
  | { type: 'subscribe', id: RequestId, topic: string, since?: StreamPosition }
  | { type: 'unsubscribe', id: RequestId, topic: string }
  // dataJson: `data` as JSON text when the frame came as MessagePack (the dispatcher measures it).
  | { type: 'publish', id: RequestId, topic: string, data: unknown, dataJson?: string }
  | { type: 'rpc', id: RequestId, method: string, data: unknown }
  | { type: 'history', id: RequestId, topic: string, since?: StreamPosition, limit?: number }
  | { type: 'presence', id: RequestId, topic: string }
  | { type: 'refresh', id: RequestId, token: string }
  | { type: 'ping', id?: RequestId }

export type ParseResult =
  | { ok: true, frame: ClientFrame }
  | { ok: false, error: ProtocolError, id?: RequestId }

type Json = Record<string, unknown>

function isRequestId (value: unknown): value is RequestId {
  return (typeof value === 'string' && value.length > 0 && value.length <= 128) ||
    (typeof value === 'number' && Number.isFinite(value))
}

function bad (message: string): ProtocolError {
  return new ProtocolError(ErrorCode.badRequest, message)
}

function requireTopic (raw: Json): string {
  const topic = raw.topic
  if (typeof topic !== 'string') throw bad('"topic" must be a string')
  if (!isValidTopic(topic)) throw bad(`invalid topic "${topic.slice(0, 300)}"`)
  return topic
}

function optionalSince (raw: Json): StreamPosition | undefined {
  const since = raw.since
  if (since === undefined) return undefined
  if (since === null || typeof since !== 'object' || Array.isArray(since)) throw bad('"since" must be an object {epoch, offset}')
  const { epoch, offset } = since as Json
  if (typeof epoch !== 'string') throw bad('"since.epoch" must be a string')
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) throw bad('"since.offset" must be a non-negative integer')
  return { epoch, offset: offset as number }
}

/**
 * The deepest nesting of arrays and objects a publication's `data` may have (docs/protocol.md §2):
 * JSON.parse takes any depth, but JSON.stringify recurses and throws a RangeError (a 500) deeper than
 * a few thousand levels. Far more than any real message needs.
 */
export const MAX_DATA_DEPTH = 256

/** True when `value` nests arrays/objects deeper than `max` levels; stops at the first such branch. */
export function nestedDeeperThan (value: unknown, max: number = MAX_DATA_DEPTH): boolean {
  if (value === null || typeof value !== 'object') return false
  if (max === 0) return true
  if (Array.isArray(value)) {
    for (const item of value) if (nestedDeeperThan(item, max - 1)) return true
    return false
  }
  for (const key in value) if (nestedDeeperThan((value as Json)[key], max - 1)) return true
  return false
}

/** The message of a `data` refused by nestedDeeperThan, naming the field as `field`. */
export function tooDeepMessage (field: string): string {
  return `${field} is nested deeper than ${MAX_DATA_DEPTH} levels of arrays and objects`
}

/** An RPC method name's longest (rpc.ts registers none longer). */
const MAX_METHOD_LENGTH = 128

function optionalLimit (raw: Json): number | undefined {
  const limit = raw.limit
  if (limit === undefined) return undefined
  if (!Number.isSafeInteger(limit) || (limit as number) < 0) throw bad('"limit" must be a non-negative integer')
  return limit as number
}

function toFrame (raw: Json, id: RequestId | undefined): ClientFrame {
  const type = raw.type
  if (type === 'ping') return id === undefined ? { type } : { type, id }
  if (typeof type !== 'string') throw bad('"type" must be a string')
  if (id === undefined) throw bad('"id" is required (a string or a number)')
  switch (type) {
    case 'subscribe': return { type, id, topic: requireTopic(raw), since: optionalSince(raw) }
    case 'unsubscribe': return { type, id, topic: requireTopic(raw) }
    case 'publish':
      if (!('data' in raw)) throw bad('"data" is required')
      if (nestedDeeperThan(raw.data)) throw bad(tooDeepMessage('"data"'))
      return { type, id, topic: requireTopic(raw), data: raw.data }
    case 'history': return { type, id, topic: requireTopic(raw), since: optionalSince(raw), limit: optionalLimit(raw) }
    case 'presence': return { type, id, topic: requireTopic(raw) }
    case 'refresh':
      if (typeof raw.token !== 'string' || raw.token === '') throw bad('"token" must be a non-empty string')
      return { type, id, token: raw.token }
    case 'rpc':
      if (typeof raw.method !== 'string' || raw.method === '' || raw.method.length > MAX_METHOD_LENGTH) {
        throw bad(`"method" must be a non-empty string of at most ${MAX_METHOD_LENGTH} characters`)
      }
      if (nestedDeeperThan(raw.data)) throw bad(tooDeepMessage('"data"'))
      return { type, id, method: raw.method, data: raw.data ?? null }
    default: throw bad(`unknown type "${type.slice(0, 64)}"`)
  }
}

/** Parses one text frame. Never throws: a bad frame becomes an error to send back. */
export function parseClientFrame (text: string): ParseResult {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    return { ok: false, error: bad('malformed JSON') }
  }
  return clientFrameOf(raw)
}

/**
 * The frame a decoded value stands for: what parseClientFrame does after JSON.parse, and what a
 * MessagePack frame goes through once decoded to JSON values (encoding.ts). Never throws.
 */
export function clientFrameOf (raw: unknown): ParseResult {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return { ok: false, error: bad('a frame must be a JSON object') }
  }
  const rawId = (raw as Json).id
  if (rawId !== undefined && !isRequestId(rawId)) {
    return { ok: false, error: bad('"id" must be a non-empty string (at most 128 characters) or a finite number') }
  }
  const id = rawId as RequestId | undefined
  try {
    return { ok: true, frame: toFrame(raw as Json, id) }
  } catch (err) {
    return { ok: false, error: err as ProtocolError, id }
  }
}

// ---- server -> client ----

// No object spread in these encoders: V8 builds `{ a, ...b }` on a slow path, hundreds of ns each.
export function encodeWelcome (welcome: Welcome): string {
  const { connectionId, user, node, heartbeat, expiresAt } = welcome
  return JSON.stringify({ type: 'welcome', connectionId, user, node, heartbeat, expiresAt })
}

/** `{"type":"ack","id":...}` followed by `fields` (which never hold `type` or `id`). */
export function encodeAck (id: RequestId, fields: object = {}): string {
  const rest = JSON.stringify(fields)
  return `{"type":"ack","id":${JSON.stringify(id)}${rest === '{}' ? '}' : `,${rest.slice(1)}`}`
}

export function encodeError (code: ErrorCode, message: string, id?: RequestId): string {
  return JSON.stringify(id === undefined ? { type: 'error', code, message } : { type: 'error', code, message, id })
}

export function encodePong (id?: RequestId): string {
  return id === undefined ? '{"type":"pong"}' : JSON.stringify({ type: 'pong', id })
}

export interface PublicationInput {
  topic: string
  data: unknown
  /** The publishing user, when a client (not the server API) published. */
  from?: string
  /** `data` already serialized, when the caller had to (a MessagePack publish measures it): not serialized again. */
  dataJson?: string
}

/**
 * A publication as it travels: its position in the topic's stream and the `message` frame, serialized
 * once, that is sent as-is to every subscriber. Brokers build it; the hub only forwards `frame`.
 */
export interface Publication extends StreamPosition {
  topic: string
  /** When it was published, ms since epoch. */
  ts: number
  frame: string
}

/**
 * Serializes a publication to its `message` frame. `dataJson` is the already-serialized `data`, so a
 * broker that stores publications (history) can keep the JSON and never re-encode it.
 */
export function encodeMessageFrame (topic: string, dataJson: string, position: StreamPosition, ts: number, from?: string): string {
  const fromPart = from === undefined ? '' : `,"from":${jsonString(from)}`
  return `{"type":"message","topic":${jsonString(topic)},"epoch":${jsonString(position.epoch)},"offset":${position.offset},"ts":${tsText(ts)}${fromPart},"data":${dataJson}}`
}

/**
 * JSON.stringify(text) for a string: topics and epochs never need escaping, and JSON.stringify enters
 * C++ for each call (about 1,500 instructions of a publish each; callgrind, BENCHMARKS.md). Anything
 * outside printable ASCII, `"` or `\\` goes to JSON.stringify.
 */
export function jsonString (text: string): string {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code < 0x20 || code > 0x7e || code === 0x22 || code === 0x5c) return JSON.stringify(text)
  }
  return `"${text}"`
}

let lastTs = 0
let lastTsText = '0'

/** `${ts}`, remembered for the current millisecond: a ms timestamp is not a small integer, and V8 converts it the slow way. */
function tsText (ts: number): string {
  if (ts !== lastTs) {
    lastTs = ts
    lastTsText = `${ts}`
  }
  return lastTsText
}

/**
 * `fields` as JSON with a `messages` array of already-serialized message frames spliced in, so that
 * stored publications are sent as they are (history ack, HTTP history), never re-encoded.
 */
export function encodeWithMessages (fields: object, frames: readonly string[]): string {
  const head = JSON.stringify(fields)
  const separator = head === '{}' ? '' : ','
  return `${head.slice(0, -1)}${separator}"messages":[${frames.join(',')}]}`
}
