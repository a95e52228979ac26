// Handles the frames a client sends: rate limit, parse, authorize, act, reply. Every failure becomes
// an `error` frame on a connection that stays open.
import type { RawData } from 'ws'
import { armExpiry } from './auth/expiry.js'
import { BrokerUnavailableError } from './broker.js'
import type { Connection } from './connection.js'
import { Heartbeat } from './heartbeat.js'
import { canPublish, canSubscribe, OPEN_IDENTITY } from './identity.js'
import type { RealtimeNode } from './node.js'
import {
  encodeAck, encodeError, encodeWithMessages, encodePong, ErrorCode, parseClientFrame, ProtocolError, ServerClose,
  type ClientFrame, type RequestId
} from './protocol.js'

export class Dispatcher {
  constructor (private readonly node: RealtimeNode) {}

  handle (connection: Connection, data: RawData, isBinary: boolean): void {
    Heartbeat.alive(connection)
    // ws enforces MAX_PAYLOAD itself (closing with 1009 and no reason before the frame reaches us),
    // unless a host registered @fastify/websocket with a larger limit: then it is enforced here.
    const { maxPayload } = this.node.config
    const bytes = byteLength(data)
    if (bytes > maxPayload) return connection.close(ServerClose.frameTooLarge(maxPayload))
    if (!this.withinRate(connection)) return
    if (!this.withinInboundBudget(connection, bytes)) return
    if (isBinary) return this.fail(connection, new ProtocolError(ErrorCode.badRequest, 'frames must be text frames holding JSON'))
    const parsed = parseClientFrame(data.toString())
    if (!parsed.ok) return this.fail(connection, parsed.error, parsed.id)
    const frame = parsed.frame
    this.dispatch(connection, frame).catch(err => this.fail(connection, err, frame.id))
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
    const { identity } = connection
    if (identity.admin && identity !== OPEN_IDENTITY) return true
    // Built per frame rather than kept per connection: idle memory per connection is a number we hold.
    const key = connection.user === null ? `connection:${connection.id}` : `user:${connection.user}`
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
    const { hub, config } = this.node
    switch (frame.type) {
      case 'ping':
        return connection.send(encodePong(frame.id))
      case 'subscribe':
        this.authorize(canSubscribe(connection.identity, frame.topic), 'subscribe to', frame.topic)
        this.node.topicSchemas?.requireDeclared(frame.topic) // STRICT_TOPICS: bad_request for an undeclared topic
        return hub.subscribe(connection, frame.id, frame.topic, frame.since)
      case 'unsubscribe':
        hub.unsubscribe(connection, frame.topic)
        return connection.send(encodeAck(frame.id, { topic: frame.topic }))
      case 'publish': {
        this.authorize(canPublish(connection.identity, frame.topic), 'publish to', frame.topic)
        const result = await this.node.publish(frame.topic, frame.data, { source: 'ws', from: connection.user ?? undefined })
        return connection.send(encodeAck(frame.id, result))
      }
      case 'history': {
        this.authorize(canSubscribe(connection.identity, frame.topic), 'read the history of', frame.topic)
        const limit = Math.min(frame.limit ?? config.historySize, config.historySize)
        const history = await this.node.history(frame.topic, { since: frame.since, limit })
        const fields = { type: 'ack', id: frame.id, topic: frame.topic, epoch: history.epoch, offset: history.offset }
        return connection.send(encodeWithMessages(fields, history.publications.map(p => p.frame)))
      }
      case 'presence': {
        this.node.requirePresence()
        this.authorize(canSubscribe(connection.identity, frame.topic), 'read the presence of', frame.topic)
        return connection.send(encodeAck(frame.id, await this.node.presence(frame.topic)))
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

function byteLength (data: RawData): number {
  return Array.isArray(data) ? data.reduce((sum, chunk) => sum + chunk.length, 0) : data.byteLength
}

export function toProtocolError (err: unknown): ProtocolError {
  if (err instanceof ProtocolError) return err
  if (err instanceof BrokerUnavailableError) return new ProtocolError(ErrorCode.unavailable, 'the broker is unavailable; try again')
  return new ProtocolError(ErrorCode.internal, 'internal error')
}
