// One realtime node: the broker, the hub, the heartbeat and the frame dispatcher wired together. The
// Fastify plugins own its lifecycle; host routes reach it as `fastify.realtime`.
import { randomUUID } from 'node:crypto'
import type { WebSocket } from 'ws'
import type { Config } from '../config.js'
import { BrokerUnavailableError, type Broker, type ControlMessage, type HistoryQuery, type HistoryResult } from './broker.js'
import { Connection } from './connection.js'
import { Dispatcher } from './dispatcher.js'
import { Heartbeat } from './heartbeat.js'
import { Hub } from './hub.js'
import type { Identity } from './identity.js'
import { Presence, type TopicPresence } from './presence.js'
import { CloseCode, encodeWelcome, ErrorCode, ProtocolError, type StreamPosition } from './protocol.js'
import { Stats, type PublishSource } from './stats.js'
import { isValidTopic } from './topics.js'

/** The subset of pino's logger the core uses, so the core does not depend on Fastify. */
export interface Logger {
  info: (obj: object, msg?: string) => void
  warn: (obj: object, msg?: string) => void
  error: (obj: object, msg?: string) => void
}

/** Who opened a websocket, as the HTTP upgrade request saw it. */
export interface UpgradeInfo {
  /** request.ip: the client's address, from X-Forwarded-For when TRUST_PROXY trusts the proxy. */
  remoteAddress?: string
  /** The upgrade request's id, the `reqId` of its HTTP log lines. */
  reqId?: string
}

export interface PublishResult extends StreamPosition {
  topic: string
}

export interface NodePublishOptions {
  /** Publish at most once per key and topic within IDEMPOTENCY_TTL_MS; a repeat gets the first result. */
  idempotencyKey?: string
}

/** How long an idempotency key is remembered (PROTOCOL §4: 5 minutes). */
export const IDEMPOTENCY_TTL_MS = 5 * 60_000

export class RealtimeNode {
  readonly id: string
  readonly startedAt = Date.now()
  readonly stats = new Stats()
  readonly hub: Hub
  private readonly heartbeat: Heartbeat
  private readonly dispatcher = new Dispatcher(this)
  /** Undefined when PRESENCE and JOIN_LEAVE are both off. */
  private readonly presenceTracker?: Presence
  /** Set when shutdown begins: readiness fails and new upgrades are refused. */
  draining = false
  /**
   * Verifies the token of a `refresh` frame (set by the auth plugin); rejects with `unauthorized`.
   * Undefined when the server verifies no tokens, and refresh is then refused.
   */
  refreshIdentity?: (token: string) => Promise<Identity>

  constructor (readonly config: Config, readonly broker: Broker, readonly log: Logger) {
    this.id = config.nodeId
    if (config.presence || config.joinLeave) {
      this.presenceTracker = new Presence(broker, this.id, { track: config.presence, joinLeave: config.joinLeave }, log)
    }
    this.hub = new Hub(broker, this.stats, { maxSubscriptions: config.maxSubscriptions, maxRecovery: config.historySize, presence: this.presenceTracker })
    this.heartbeat = new Heartbeat(this.hub.connections, config.heartbeatInterval, config.heartbeatTimeout)
  }

  async start (): Promise<void> {
    await this.broker.start({
      publication: publication => this.hub.deliver(publication),
      event: (topic, frame) => this.hub.deliverEvent(topic, frame),
      describe: () => ({ id: this.id, startedAt: this.startedAt, ...this.hub.counts }),
      control: message => this.applyControl(message),
      status: up => this.log[up ? 'info' : 'warn']({ broker: up ? 'up' : 'down' }, up ? 'broker reachable again' : 'broker unreachable')
    })
    this.heartbeat.start()
  }

  /** Publishes `data` to `topic` on every node. Rejects with `bad_request` or `unavailable`. */
  async publish (topic: string, data: unknown, source: PublishSource = 'api', from?: string, options: NodePublishOptions = {}): Promise<PublishResult> {
    if (typeof topic !== 'string' || !isValidTopic(topic)) throw new ProtocolError(ErrorCode.badRequest, `invalid topic "${String(topic).slice(0, 300)}"`)
    if (!this.broker.up) throw new BrokerUnavailableError('the broker is unavailable')
    const started = performance.now()
    // Keys are per topic (a topic has no spaces, so the joined key is unambiguous): the same key on
    // another topic is another publication, and a repeat always answers with its own topic's position.
    const { idempotencyKey } = options
    const position = await this.broker.publish({ topic, data, from }, idempotencyKey === undefined
      ? undefined
      : { idempotencyKey: `${topic} ${idempotencyKey}`, idempotencyTtlMs: IDEMPOTENCY_TTL_MS })
    this.stats.observePublishDuration((performance.now() - started) / 1000)
    if (!position.repeated) this.stats.publications[source]++
    return { topic, epoch: position.epoch, offset: position.offset }
  }

  async history (topic: string, query: HistoryQuery): Promise<HistoryResult> {
    if (!this.broker.up) throw new BrokerUnavailableError('the broker is unavailable')
    return this.broker.history(topic, query)
  }

  /**
   * Throws `not_found` when PRESENCE is off. The presence request and route call it before their ACL
   * check: a feature that is off is off whoever asks.
   */
  requirePresence (): Presence {
    if (this.presenceTracker === undefined || !this.config.presence) {
      throw new ProtocolError(ErrorCode.notFound, 'presence is not enabled on this server (PRESENCE)')
    }
    return this.presenceTracker
  }

  /** Who is subscribed to `topic` on every node. Rejects with `not_found` when PRESENCE is off. */
  async presence (topic: string): Promise<TopicPresence> {
    const presence = this.requirePresence()
    if (!this.broker.up) throw new BrokerUnavailableError('the broker is unavailable')
    return presence.report(topic)
  }

  /**
   * Takes over an upgraded socket. The message handler is attached synchronously, before anything is
   * awaited, so no early frame is lost. One log line when it opens and one when it closes; nothing
   * is logged or allocated per message.
   */
  accept (socket: WebSocket, identity: Identity, upgrade: UpgradeInfo = {}): Connection {
    const connection = new Connection(randomUUID(), socket, identity, this.config, upgrade.remoteAddress)
    socket.on('message', (data, isBinary) => this.dispatcher.handle(connection, data, isBinary))
    socket.on('pong', () => Heartbeat.alive(connection))
    socket.on('error', err => {
      connection.recordError(err)
      this.log.info({ err, connectionId: connection.id, user: connection.user }, 'websocket error')
    })
    socket.once('close', (code, reason) => {
      this.hub.remove(connection)
      const closeCode = connection.closeCode ?? code
      this.stats.count(this.stats.disconnects, closeCode)
      this.log.info({
        connectionId: connection.id,
        user: connection.user,
        remoteAddress: connection.remoteAddress,
        code: closeCode,
        reason: connection.closeReason ?? reason.toString(),
        durationMs: Date.now() - connection.openedAt
      }, 'websocket closed')
    })
    this.hub.add(connection)
    this.log.info({ connectionId: connection.id, user: identity.user, remoteAddress: upgrade.remoteAddress, reqId: upgrade.reqId }, 'websocket opened')
    connection.send(encodeWelcome({
      connectionId: connection.id,
      user: identity.user,
      node: this.id,
      heartbeat: this.config.heartbeatInterval,
      expiresAt: identity.expiresAt
    }))
    return connection
  }

  /** Acts on a control message from any node: closes the affected local connections with 4003. */
  applyControl (message: ControlMessage): void {
    if (message.type === 'disconnect') {
      for (const connection of this.hub.connectionsOf(message.user)) connection.close(CloseCode.forbidden, 'disconnected by the server')
      return
    }
    for (const connection of this.hub.connections) {
      if (connection.identity.jti === message.jti) connection.close(CloseCode.forbidden, 'token revoked')
    }
  }

  /**
   * Graceful drain: refuse new upgrades, close every socket with 1001 (clients reconnect elsewhere and
   * recover), wait for them to go, up to `timeoutMs`, then cut off whoever is left.
   */
  async drain (timeoutMs = this.config.shutdownTimeout): Promise<void> {
    this.draining = true
    this.heartbeat.stop()
    for (const connection of this.hub.connections) connection.close(CloseCode.goingAway, 'server shutting down')
    const deadline = Date.now() + timeoutMs
    while (this.hub.connections.size > 0 && Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    for (const connection of this.hub.connections) connection.terminate('still open at the end of the drain (SHUTDOWN_TIMEOUT)')
    // terminate() destroys the sockets, but their 'close' events, which take them out of the hub (its
    // topics, presence), follow a few ticks later: wait for those (briefly), so that close() does not
    // return, and the broker close, with connections still listed.
    const cutoff = Date.now() + 200
    while (this.hub.connections.size > 0 && Date.now() < cutoff) {
      await new Promise(resolve => setTimeout(resolve, 5))
    }
  }

  async close (): Promise<void> {
    this.heartbeat.stop()
    await this.broker.close()
  }
}
