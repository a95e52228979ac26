// Handles the frames a client sends: rate limit, parse, authorize, act, reply. Every failure becomes
// an `error` frame on a connection that stays open.
import type { RawData } from 'ws'
import type { Config } from '../config.js'
import { armExpiry } from './auth/expiry.js'
import type { HistoryQuery, HistoryResult } from './broker.js'
import type { Connection } from './connection.js'
import { decodeMsgpackFrame } from './encoding.js'
import { Heartbeat } from './heartbeat.js'
import { historyReplyBytes, REFUSED, type HistoryBudget } from './history-budget.js'
import type { Hooks } from './hooks.js'
import type { Hub } from './hub.js'
import { canPublish, canSubscribe, OPEN_IDENTITY, type Identity } from './identity.js'
import type { InboundBudget } from './inbound-budget.js'
import {
  clientFrameOf, encodeAck, encodeError, encodeWithMessages, encodePong, ErrorCode, MAX_DATA_DEPTH, parseClientFrame, ProtocolError,
  ServerClose, type ClientFrame, type ParseResult, type RequestId
} from './protocol.js'
import { toProtocolError } from './protocol-errors.js'
import type { RpcMethods } from './rpc.js'
import type { Stats } from './stats.js'
import type { TopicSchemas } from './topic-schemas.js'

/** A MessagePack frame's deepest nesting: the frame's own map and MAX_DATA_DEPTH levels of `data`, as JSON frames. */
const MSGPACK_MAX_DEPTH = MAX_DATA_DEPTH + 1

type HistoryFrame = Extract<ClientFrame, { type: 'history' }>
type PublishFrame = Extract<ClientFrame, { type: 'publish' }>

/**
 * What a client's frames can reach: the node's parts the dispatcher uses, and nothing else of it (not
 * the broker, the control bus, the admissions). RealtimeNode is one; so is a test's fake.
 */
export interface DispatchTarget {
  readonly config: Pick<Config, 'maxPayload' | 'messageRate' | 'historySize'>
  readonly stats: Stats
  readonly hub: Hub
  readonly inbound: InboundBudget
  readonly historyBudget: HistoryBudget
  readonly hooks: Hooks
  readonly rpcMethods: RpcMethods
  readonly topicSchemas?: TopicSchemas
  readonly log: { error: (obj: object, msg?: string) => void }
  /** Verifies a `refresh` frame's token; undefined when the server verifies none. */
  readonly refreshIdentity?: (token: string) => Promise<Identity>
  publish: (topic: string, data: unknown, options: { source: 'ws', from?: string, dataJson?: string, identity: Identity }) => Promise<object>
  history: (topic: string, query: HistoryQuery) => Promise<HistoryResult>
  /** Throws `not_found` when PRESENCE is off. */
  requirePresence: () => unknown
  presence: (topic: string) => Promise<object>
}

export class Dispatcher {
  constructor (private readonly node: DispatchTarget) {}

  handle (connection: Connection, data: RawData, isBinary: boolean): void {
    // A connection whose close has begun (4009, 4008, any close) does no more work: ws keeps reading
    // until the peer answers the close, up to 30 s, and a frame it reads then is not handled at all.
    if (!connection.open) return
    Heartbeat.alive(connection)
    // ws enforces MAX_PAYLOAD itself (closing with 1009 and no reason before the frame reaches us),
    // unless a host registered @fastify/websocket with a larger limit: then it is enforced here.
    const { maxPayload } = this.node.config
    const bytes = byteLength(data)
    if (bytes > maxPayload) return connection.close(ServerClose.frameTooLarge(maxPayload))
    if (!this.withinRate(connection)) return
    if (!this.withinInboundBudget(connection, bytes)) return
    let parsed: ParseResult
    if (!isBinary) {
      parsed = parseClientFrame(data.toString())
    } else if (connection.encoding === 'msgpack') {
      // Decoded only now, after the rate and the byte budget took the frame as received, and straight
      // to JSON values: no JSON text is made of the frame and parsed again.
      try {
        parsed = clientFrameOf(decodeMsgpackFrame(data, MSGPACK_MAX_DEPTH))
      } catch (err) {
        return this.fail(connection, err)
      }
      if (parsed.ok && parsed.frame.type === 'publish' && !this.withinJsonLimits(connection, parsed.frame, bytes)) return
    } else {
      return this.fail(connection, new ProtocolError(ErrorCode.badRequest, 'frames must be text frames holding JSON'))
    }
    if (!parsed.ok) return this.fail(connection, parsed.error, parsed.id)
    const frame = parsed.frame
    this.dispatch(connection, frame).catch(err => this.fail(connection, err, frame.id))
  }

  /**
   * A MessagePack publish's data as JSON is what is stored and sent to every subscriber, and can be
   * several times the frame (escaped control characters, long float digits): MAX_PAYLOAD applies to it
   * (over it: close 1009), and the byte budget takes the bytes it has beyond the frame's, so a client's
   * limits do not depend on its encoding. The text is kept on the frame and not serialized again.
   */
  private withinJsonLimits (connection: Connection, frame: PublishFrame, frameBytes: number): boolean {
    frame.dataJson = JSON.stringify(frame.data)
    const jsonBytes = Buffer.byteLength(frame.dataJson)
    const { maxPayload } = this.node.config
    if (jsonBytes > maxPayload) {
      connection.close(ServerClose.frameTooLarge(maxPayload))
      return false
    }
    return jsonBytes <= frameBytes || this.withinInboundBudget(connection, jsonBytes - frameBytes)
  }

  private withinRate (connection: Connection): boolean {
    const verdict = connection.messageRate.admit()
    if (verdict === 'accepted') return true
    this.node.stats.rateLimited.message++
    // A client that keeps sending into a full limit is closed; one that only bursts is just told.
    if (verdict === 'exceeded') {
      connection.close(ServerClose.rateLimitExceeded)
    } else {
      this.fail(connection, new ProtocolError(ErrorCode.rateLimited, `over ${this.node.config.messageRate} frames per second`))
    }
    return false
  }

  /** USER_INBOUND_RATE: the user's bytes per second across their connections (and HTTP); admins are exempt. */
  private withinInboundBudget (connection: Connection, bytes: number): boolean {
    const key = budgetKey(connection)
    if (key === undefined) return true
    const verdict = this.node.inbound.admit(key, bytes)
    if (verdict === 'accepted') return true
    this.node.stats.rateLimited.bytes++
    if (verdict === 'exceeded') {
      connection.close(ServerClose.inboundRateExceeded)
    } else {
      this.fail(connection, new ProtocolError(ErrorCode.rateLimited, `over ${this.node.inbound.rate} bytes per second for this user`))
    }
    return false
  }

  private async dispatch (connection: Connection, frame: ClientFrame): Promise<void> {
    const { hub } = this.node
    switch (frame.type) {
      case 'ping':
        return connection.send(encodePong(frame.id))
      case 'subscribe':
        this.authorize(canSubscribe(connection.identity, frame.topic), 'subscribe to', frame.topic)
        this.node.topicSchemas?.requireDeclared(frame.topic) // STRICT_TOPICS: bad_request for an undeclared topic
        if (this.node.hooks.has('onSubscribe') && !(await this.hooksAllowRead(connection, frame.topic))) return
        // A replay (`since`) is paid from the caller's history budget, like a `history` reply.
        return await hub.subscribe(connection, frame.id, frame.topic, frame.since, budgetKey(connection))
      case 'unsubscribe':
        hub.unsubscribe(connection, frame.topic)
        return connection.send(encodeAck(frame.id, { topic: frame.topic }))
      case 'publish': {
        this.authorize(canPublish(connection.identity, frame.topic), 'publish to', frame.topic)
        const result = await this.node.publish(frame.topic, frame.data, {
          source: 'ws', from: connection.user ?? undefined, dataJson: frame.dataJson, identity: connection.identity
        })
        return connection.send(encodeAck(frame.id, result))
      }
      case 'history':
        this.authorize(canSubscribe(connection.identity, frame.topic), 'read the history of', frame.topic)
        if (this.node.hooks.has('onSubscribe') && !(await this.hooksAllowRead(connection, frame.topic))) return
        return await this.history(connection, frame)
      case 'presence': {
        this.node.requirePresence()
        this.authorize(canSubscribe(connection.identity, frame.topic), 'read the presence of', frame.topic)
        if (this.node.hooks.has('onSubscribe') && !(await this.hooksAllowRead(connection, frame.topic))) return
        return connection.send(encodeAck(frame.id, await this.node.presence(frame.topic)))
      }
      case 'rpc': {
        const data = await this.node.rpcMethods.call(frame.method, { identity: connection.identity, data: frame.data, connectionId: connection.id })
        return connection.send(encodeAck(frame.id, { data }))
      }
      case 'refresh': {
        if (this.node.refreshIdentity === undefined) throw new ProtocolError(ErrorCode.badRequest, 'this server verifies no tokens (no JWT key configured): nothing to refresh')
        const identity = await this.node.refreshIdentity(frame.token)
        // A refresh extends a session; it must not turn it into somebody else's.
        if (identity.user !== connection.identity.user) throw new ProtocolError(ErrorCode.forbidden, 'the new token is for another user (sub)')
        connection.renewIdentity(identity)
        armExpiry(connection)
        return connection.send(encodeAck(frame.id, { expiresAt: identity.expiresAt }))
      }
    }
  }

  /**
   * A `history` reply, its bytes taken from the caller's history budget before it is built
   * (history-budget.ts; admins are exempt); `rate_limited` while that budget is in deficit.
   */
  private async history (connection: Connection, frame: HistoryFrame): Promise<void> {
    const { historySize } = this.node.config
    const limit = Math.min(frame.limit ?? historySize, historySize)
    const read = async (): Promise<HistoryResult | undefined> => {
      // Requests wait for the caller's earlier ones: the connection may have begun closing meanwhile.
      if (!connection.open) return undefined
      const history = await this.node.history(frame.topic, { since: frame.since, limit })
      return connection.open ? history : undefined
    }
    const key = budgetKey(connection)
    const history = key === undefined ? await read() : await this.node.historyBudget.serve(key, read, historyReplyBytes)
    if (history === REFUSED) {
      this.node.stats.rateLimited.bytes++
      throw new ProtocolError(ErrorCode.rateLimited, `history replies over ${this.node.historyBudget.rate} bytes per second for this user: try again shortly`)
    }
    if (history === undefined) return
    const fields = { type: 'ack', id: frame.id, topic: frame.topic, epoch: history.epoch, offset: history.offset }
    connection.send(encodeWithMessages(fields, history.publications.map(p => p.frame)))
  }

  /**
   * The host's `onSubscribe` hooks on a read the ACL allowed (hooks.ts): rejects with their refusal;
   * false when the connection began closing while they ran (nothing more to do for it).
   */
  private async hooksAllowRead (connection: Connection, topic: string): Promise<boolean> {
    await this.node.hooks.runSubscribe({ identity: connection.identity, topic, connectionId: connection.id })
    return connection.open
  }

  private authorize (allowed: boolean, action: string, topic: string): void {
    if (!allowed) throw new ProtocolError(ErrorCode.forbidden, `not allowed to ${action} "${topic}"`)
  }

  private fail (connection: Connection, err: unknown, id?: RequestId): void {
    const error = toProtocolError(err)
    if (error.code === ErrorCode.internal) this.node.log.error({ err, connectionId: connection.id }, 'frame handling failed')
    this.node.stats.count(this.node.stats.errors, error.code)
    connection.send(encodeError(error.code, error.message, id))
  }
}

/**
 * Whose budgets a connection's frames count against (USER_INBOUND_RATE, history bytes): its user, or
 * the connection itself when anonymous; undefined for admins, who are exempt. Built per frame rather
 * than kept per connection: idle memory per connection is a number we hold.
 */
export function budgetKey (connection: Connection): string | undefined {
  const { identity } = connection
  if (identity.admin && identity !== OPEN_IDENTITY) return undefined
  return connection.user === null ? `connection:${connection.id}` : `user:${connection.user}`
}

function byteLength (data: RawData): number {
  return Array.isArray(data) ? data.reduce((sum, chunk) => sum + chunk.length, 0) : data.byteLength
}
