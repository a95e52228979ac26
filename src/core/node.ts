// One realtime node: the broker seam, the hub, presence, the heartbeat and the frame dispatcher wired
// together. It is internal: the Fastify plugins build it (every collaborator through the constructor)
// and own its lifecycle, the routes get it from them, and host code sees only the small RealtimeApi
// (api.ts) as `fastify.realtime`. docs/architecture.md follows a publication through it.
import { randomUUID } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import type { RawData, WebSocket } from 'ws'
import type { Config } from '../config.js'
import { Admissions } from './admission.js'
import { disarmExpiry } from './auth/expiry.js'
import { MIN_EXPIRES_AT_MS, revocationUntil } from './auth/revocation.js'
import { BrokerUnavailableError, type Broker, type HistoryQuery, type HistoryResult, type NodeInfo } from './broker.js'
import type { Connection } from './connection.js'
import { ConnectionControl } from './connection-control.js'
import { Dispatcher } from './dispatcher.js'
import { msgpackAvailable, MSGPACK_UNAVAILABLE } from './encoding.js'
import { Heartbeat } from './heartbeat.js'
import { HistoryBudget } from './history-budget.js'
import { Hooks } from './hooks.js'
import { Hub } from './hub.js'
import { InboundBudget } from './inbound-budget.js'
import type { Identity } from './identity.js'
import { Presence, type TopicPresence } from './presence.js'
import { encodeWelcome, ErrorCode, ProtocolError, ServerClose, type Publication, type StreamPosition } from './protocol.js'
import { RpcMethods } from './rpc.js'
import { Stats, type PublishSource } from './stats.js'
import { TopicSchemas } from './topic-schemas.js'
import { WebSocketConnection } from './ws-connection.js'
import { SseConnection } from './sse-connection.js'
import { startWriteTurn } from './write-coalescing.js'

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
  /** The upgrade's connection slots (src/core/admission.ts): released when the connection closes. */
  admission?: { release: () => void, readonly startedAt?: number }
  /** The id the `onConnect` hooks were told; a new one when none ran. */
  connectionId?: string
}

/** Where the shared socket listeners (RealtimeNode.socketListeners) find a socket's connection. */
const kConnection = Symbol('realtime.connection')

type SocketWithConnection = WebSocket & { [kConnection]: WebSocketConnection }

function attachConnection (socket: WebSocket, connection: WebSocketConnection): void {
  (socket as SocketWithConnection)[kConnection] = connection
}

function connectionOf (socket: WebSocket): WebSocketConnection {
  return (socket as SocketWithConnection)[kConnection]
}

export interface PublishResult extends StreamPosition {
  topic: string
}

export interface NodePublishOptions {
  /** Who published, counted in realtime_publications_total{source}; default 'api' (host code). */
  source?: PublishSource
  /** The publishing user, written into the message frame as `from` (websocket publishes). */
  from?: string
  /** Publish at most once per key and topic within IDEMPOTENCY_TTL_MS; a repeat gets the first result. */
  idempotencyKey?: string
  /** Where the data sits in the request, named by a declared topic's validation error: 'data' (default), 'body/data' (HTTP). */
  dataPath?: string
  /** `data` as JSON text, when the caller has it already (PublicationInput.dataJson). */
  dataJson?: string
  /** The client publishing (websocket or HTTP, with `source`): the `onPublish` hooks run. Host code has none. */
  identity?: Identity
}

export interface RevokeOptions {
  /** Until when the token is refused, in ms since the epoch (its `exp` × 1000); default: 7 days from now. */
  expiresAt?: number
}

/** This node and every live node, as GET /api/info answers. */
export interface NodesInfo {
  node: string
  nodes: NodeInfo[]
}

/** Everything a node works with, given once at construction. */
export interface NodeCollaborators {
  config: Config
  /** Pub/sub and history; its optional parts (presence store, control bus, node registry) enable the rest. */
  broker: Broker
  log: Logger
  /**
   * Verifies the token of a `refresh` frame (the auth plugin's verifier); rejects with `unauthorized`.
   * Undefined when the server verifies no tokens: refresh is then refused.
   */
  refreshIdentity?: (token: string) => Promise<Identity>
}

/**
 * Told of each publication this node accepted (a repeated idempotency key is not one), after the
 * broker confirmed it: the seam through which the MQTT bridge sends publications out exactly once,
 * from the node that accepted them rather than from every node that fans them out. Must not throw.
 */
export type PublishedListener = (topic: string, data: unknown, source: PublishSource) => void

/** The listeners node.accept attaches to every socket; `this` is the socket. */
interface SocketListeners {
  message: (this: WebSocket, data: RawData, isBinary: boolean) => void
  pong: (this: WebSocket) => void
  error: (this: WebSocket, err: Error) => void
  close: (this: WebSocket, code: number, reason: Buffer) => void
}

/** How long an idempotency key is remembered (docs/protocol.md §7, "Idempotent publish": 5 minutes). */
export const IDEMPOTENCY_TTL_MS = 5 * 60_000

export class RealtimeNode {
  readonly id: string
  readonly startedAt = Date.now()
  readonly stats = new Stats()
  readonly config: Config
  readonly broker: Broker
  readonly log: Logger
  readonly refreshIdentity?: (token: string) => Promise<Identity>
  readonly hub: Hub
  /** Connection slots (MAX_CONNECTIONS, MAX_CONNECTIONS_PER_USER) and the upgrades being admitted (routes/ws.ts). */
  readonly admissions: Admissions
  private readonly control: ConnectionControl
  private readonly heartbeat: Heartbeat
  private readonly dispatcher = new Dispatcher(this)
  /**
   * The listeners of every accepted socket, one set per node: `this` is the socket, which carries its
   * connection. Four closures and a once() wrapper per connection were about 0.4 KB of each idle
   * connection's memory (BENCHMARKS.md).
   */
  private readonly socketListeners = this.createSocketListeners()
  /** What every event stream calls when its response closes: one function per node, as for sockets. */
  private readonly streamClosed = (connection: SseConnection, code: number, reason: string): void => this.connectionClosed(connection, code, reason)
  /** USER_INBOUND_RATE: bytes per second per user, websocket frames and HTTP publishes together. */
  readonly inbound: InboundBudget
  /** What `history` replies may cost each caller: USER_INBOUND_RATE bytes per second of its own (history-budget.ts). */
  readonly historyBudget: HistoryBudget
  /** Undefined when PRESENCE and JOIN_LEAVE are both off. */
  private readonly presenceTracker?: Presence
  /** Set when shutdown begins: readiness fails and new upgrades are refused. */
  draining = false
  /** Declared topics (TOPICS_FILE, the `topics` option): undefined when none are, and nothing is checked. */
  readonly topicSchemas?: TopicSchemas
  /** See PublishedListener. */
  readonly publishedListeners = new Set<PublishedListener>()
  /** The host's hooks (app.realtime.addHook; hooks.ts). */
  readonly hooks: Hooks
  /** The host's RPC methods (app.realtime.rpc; rpc.ts). */
  readonly rpcMethods: RpcMethods

  constructor ({ config, broker, log, refreshIdentity }: NodeCollaborators) {
    this.id = config.nodeId
    this.config = config
    this.broker = broker
    this.log = log
    this.refreshIdentity = refreshIdentity
    this.inbound = new InboundBudget(config.userInboundRate, config.userInboundBurst, config.messageBurst)
    this.historyBudget = new HistoryBudget(config.userInboundRate, config.userInboundBurst)
    this.hooks = new Hooks((err, message) => log.error({ err }, message))
    this.rpcMethods = new RpcMethods((err, fields, message) => log.error({ err, ...fields }, message))
    if (config.topics !== undefined && Object.keys(config.topics).length > 0) this.topicSchemas = new TopicSchemas(config.topics, config.strictTopics)
    const store = config.presence ? broker.presenceStore : undefined
    if (config.presence && store === undefined) {
      throw new Error('PRESENCE needs a broker with a presence store, and this broker has none (its presenceStore is undefined)')
    }
    if (config.presence || config.joinLeave) {
      this.presenceTracker = new Presence(broker, this.id, { store, joinLeave: config.joinLeave, joinLeaveRate: config.joinLeaveRate }, log)
    }
    this.hub = new Hub(broker, this.stats, { maxSubscriptions: config.maxSubscriptions, maxRecovery: config.historySize, presence: this.presenceTracker, historyBudget: this.historyBudget })
    this.admissions = new Admissions(config)
    this.control = new ConnectionControl(broker.controlBus, this.hub, this.admissions, this.stats)
    this.heartbeat = new Heartbeat(this.hub.connections, config.heartbeatInterval, config.heartbeatTimeout)
  }

  async start (): Promise<void> {
    await this.broker.start({
      publication: publication => this.handlePublication(publication),
      event: (topic, frame) => this.hub.deliverEvent(topic, frame),
      status: up => this.reportBrokerStatus(up),
      control: (message, sentAt) => this.control.apply(message, sentAt),
      describe: () => this.describe()
    })
    this.heartbeat.start()
    this.inbound.start()
    this.historyBudget.start()
  }

  // ---- what the routes, the dispatcher and RealtimeApi call; topics arrive validated ----

  /** Publishes `data` to `topic` on every node. Rejects with BrokerUnavailableError while the broker is down. */
  publish (topic: string, data: unknown, options: NodePublishOptions = {}): Promise<PublishResult> {
    // Declared topics: the data must match the topic's schema (TopicPayloadError, bad_request), whoever publishes.
    // Not an async function around publishChecked: one promise less on every publish (BENCHMARKS.md).
    try {
      this.topicSchemas?.check(topic, data, options.dataPath)
    } catch (err) {
      return Promise.reject(err)
    }
    if (options.identity !== undefined && this.hooks.has('onPublish')) return this.publishThroughHooks(topic, data, options, options.identity)
    return this.publishChecked(topic, data, options)
  }

  /**
   * A client's publication through the host's `onPublish` hooks: one may refuse it (it reaches no
   * one) or replace its data, which must then pass the topic's schema again.
   */
  private async publishThroughHooks (topic: string, data: unknown, options: NodePublishOptions, identity: Identity): Promise<PublishResult> {
    const hooked = await this.hookedData(topic, data, options, identity)
    return await this.publishChecked(topic, hooked.data, hooked.replaced ? { ...options, dataJson: undefined } : options)
  }

  /** The data once the `onPublish` hooks ran; data a hook put in place passed the topic's schema. */
  private async hookedData (topic: string, data: unknown, options: NodePublishOptions, identity: Identity): Promise<{ data: unknown, replaced: boolean }> {
    const hooked = await this.hooks.runPublish({ identity, topic, data, source: options.source === 'http' ? 'http' : 'ws' })
    if (hooked.replaced) this.topicSchemas?.check(topic, hooked.data, options.dataPath)
    return hooked
  }

  /** publish() once the data has passed its topic's declaration. */
  private async publishChecked (topic: string, data: unknown, options: NodePublishOptions): Promise<PublishResult> {
    if (!this.broker.up) throw new BrokerUnavailableError('the broker is unavailable')
    const { source = 'api', from, idempotencyKey, dataJson } = options
    const started = performance.now()
    // Keys are per topic (a topic has no spaces, so the joined key is unambiguous): the same key on
    // another topic is another publication, and a repeat always answers with its own topic's position.
    const position = await this.broker.publish({ topic, data, from, dataJson }, idempotencyKey === undefined
      ? undefined
      : { idempotencyKey: `${topic} ${idempotencyKey}`, idempotencyTtlMs: IDEMPOTENCY_TTL_MS })
    this.stats.publishDuration.observe((performance.now() - started) / 1000)
    if (!position.repeated) {
      this.stats.publications[source]++
      for (const listener of this.publishedListeners) listener(topic, data, source)
    }
    return { topic, epoch: position.epoch, offset: position.offset }
  }

  /** The same data to several topics, one publication each; positions in the order of `topics`. */
  async broadcast (topics: readonly string[], data: unknown, options: Pick<NodePublishOptions, 'source' | 'dataPath' | 'identity'> = {}): Promise<PublishResult[]> {
    // Every topic's declaration first: data refused by one topic's schema publishes to none of them.
    if (this.topicSchemas !== undefined) for (const topic of topics) this.topicSchemas.check(topic, data, options.dataPath)
    const { identity } = options
    if (identity === undefined || !this.hooks.has('onPublish')) return await Promise.all(topics.map(topic => this.publishChecked(topic, data, options)))
    // A client's broadcast: each topic's publication through the onPublish hooks, all of them before
    // any is published, so that one refused publishes to none (as the schemas do).
    const hooked: unknown[] = []
    for (const topic of topics) hooked.push((await this.hookedData(topic, data, options, identity)).data)
    return await Promise.all(topics.map((topic, i) => this.publishChecked(topic, hooked[i], options)))
  }

  async history (topic: string, query: HistoryQuery = {}): Promise<HistoryResult> {
    if (!this.broker.up) throw new BrokerUnavailableError('the broker is unavailable')
    return await this.broker.history(topic, query)
  }

  /**
   * Throws `not_found` when PRESENCE is off. The presence request and route call it before their ACL
   * check: a feature that is off is off whoever asks.
   */
  requirePresence (): Presence {
    if (this.presenceTracker === undefined || !this.presenceTracker.tracking) {
      throw new ProtocolError(ErrorCode.notFound, 'presence is not enabled on this server (PRESENCE)')
    }
    return this.presenceTracker
  }

  /** Who is subscribed to `topic` on every node. Rejects with `not_found` when PRESENCE is off. */
  async presence (topic: string): Promise<TopicPresence> {
    const presence = this.requirePresence()
    if (!this.broker.up) throw new BrokerUnavailableError('the broker is unavailable')
    return await presence.report(topic)
  }

  /**
   * Refuses the token `jti` on every node and closes the connections that use it (4003). Rejects with
   * `bad_request` for an `expiresAt` in seconds, `not_found` when the broker has no control bus.
   */
  async revoke (jti: string, options: RevokeOptions = {}): Promise<void> {
    const { expiresAt } = options
    if (expiresAt !== undefined && expiresAt < MIN_EXPIRES_AT_MS) {
      throw new ProtocolError(ErrorCode.badRequest, 'expiresAt is milliseconds since the epoch; this looks like seconds (a JWT exp): multiply by 1000')
    }
    await this.control.revoke(jti, revocationUntil(expiresAt))
  }

  /** Closes every connection of `user` on every node (4003). Rejects with `not_found` without a control bus. */
  async disconnect (user: string): Promise<void> {
    await this.control.disconnect(user)
  }

  /** This node and every live node; a broker without a node registry knows this node alone. */
  async info (): Promise<NodesInfo> {
    const registry = this.broker.nodeRegistry
    return { node: this.id, nodes: registry === undefined ? [this.describe()] : await registry.nodes() }
  }

  // ---- connections ----

  /**
   * Takes over an upgraded socket. The message handler is attached synchronously, before anything is
   * awaited, so no early frame is lost. One log line when it opens and one when it closes; nothing
   * is logged or allocated per message.
   */
  accept (socket: WebSocket, identity: Identity, upgrade: UpgradeInfo = {}): WebSocketConnection {
    const connection = new WebSocketConnection(upgrade.connectionId ?? randomUUID(), socket, identity, this.config, upgrade.remoteAddress)
    connection.admission = upgrade.admission
    attachConnection(socket, connection)
    const listeners = this.socketListeners
    socket.on('message', listeners.message)
    socket.on('pong', listeners.pong)
    socket.on('error', listeners.error)
    // ws emits 'close' once: on() needs no once() wrapper.
    socket.on('close', listeners.close)
    this.hub.add(connection)
    this.log.info({ connectionId: connection.id, user: identity.user, remoteAddress: upgrade.remoteAddress, reqId: upgrade.reqId }, 'websocket opened')
    // Only a host's own @fastify/websocket can have agreed to MessagePack without the package (encoding.ts).
    if (connection.encoding === 'msgpack' && !msgpackAvailable()) {
      connection.close(MSGPACK_UNAVAILABLE)
      return connection
    }
    this.welcome(connection)
    return connection
  }

  /**
   * Takes over an event stream's response (GET /sse) for `topics`, resuming each from `since` (the
   * request's cursor) when given. The stream is welcomed but not started: the route subscribes its
   * topics, then starts it or, refused meanwhile, answers with an HTTP error (routes/sse.ts).
   */
  acceptStream (response: ServerResponse, identity: Identity, topics: readonly string[], since: ReadonlyArray<StreamPosition | undefined>, upgrade: UpgradeInfo = {}): SseConnection {
    const connection = new SseConnection(upgrade.connectionId ?? randomUUID(), response, identity, this.config, topics, since, this.streamClosed, upgrade.remoteAddress)
    connection.admission = upgrade.admission
    this.hub.add(connection)
    this.welcome(connection)
    return connection
  }

  /** The first frame of every connection. */
  private welcome (connection: Connection): void {
    const { identity } = connection
    connection.send(encodeWelcome({
      connectionId: connection.id,
      user: identity.user,
      node: this.id,
      heartbeat: this.config.heartbeatInterval,
      expiresAt: identity.expiresAt
    }))
  }

  private createSocketListeners (): SocketListeners {
    // Arrows keep the node; the listeners below get the socket as `this`.
    const handle = (connection: WebSocketConnection, data: RawData, isBinary: boolean): void => {
      // The answer (an ack, a replay) is the first frame of a turn: written as it comes (write-coalescing.ts).
      startWriteTurn()
      this.dispatcher.handle(connection, data, isBinary)
    }
    const failed = (connection: WebSocketConnection, err: Error): void => this.socketFailed(connection, err)
    const closed = (connection: WebSocketConnection, code: number, reason: Buffer): void => this.connectionClosed(connection, code, reason.toString())
    return {
      // MessagePack frames too: the dispatcher applies the limits before it decodes them.
      message (this: WebSocket, data: RawData, isBinary: boolean) { handle(connectionOf(this), data, isBinary) },
      pong (this: WebSocket) { Heartbeat.alive(connectionOf(this)) },
      error (this: WebSocket, err: Error) { failed(connectionOf(this), err) },
      close (this: WebSocket, code: number, reason: Buffer) { closed(connectionOf(this), code, reason) }
    }
  }

  private socketFailed (connection: WebSocketConnection, err: Error): void {
    connection.recordError(err)
    this.log.info({ err, connectionId: connection.id, user: connection.user }, 'websocket error')
  }

  /**
   * A connection is gone, whoever ended it: its slots, subscriptions and expiry go, and it is counted
   * and logged once. `code` and `reason` are the peer's; the ones this server sent win.
   */
  private connectionClosed (connection: Connection, code: number, reason: string): void {
    disarmExpiry(connection)
    connection.admission?.release()
    this.hub.remove(connection)
    const closeCode = connection.closeCode ?? code
    const closeReason = connection.closeReason ?? reason
    this.stats.count(this.stats.disconnects[connection.transport], closeCode)
    this.log.info({
      transport: connection.transport,
      connectionId: connection.id,
      user: connection.user,
      remoteAddress: connection.remoteAddress,
      code: closeCode,
      reason: closeReason,
      durationMs: Date.now() - connection.openedAt
    }, connection.transport === 'websocket' ? 'websocket closed' : 'event stream closed')
    if (this.hooks.has('onDisconnect')) {
      void this.hooks.runDisconnect({ identity: connection.identity, connectionId: connection.id, code: closeCode, reason: closeReason })
    }
  }

  /**
   * Graceful drain: refuse new upgrades, close every socket with 1001 (clients reconnect elsewhere and
   * recover), wait for them to go, up to `timeoutMs`, then cut off whoever is left.
   */
  async drain (timeoutMs = this.config.shutdownTimeout): Promise<void> {
    this.draining = true
    this.heartbeat.stop()
    for (const connection of this.hub.connections) connection.close(ServerClose.shuttingDown)
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
    this.inbound.stop()
    this.historyBudget.stop()
    await this.broker.close()
  }

  // ---- what the broker calls back ----

  /** A publication on a topic this node subscribed to: fan it out to the local subscribers. */
  private handlePublication (publication: Publication): void {
    this.hub.deliver(publication)
  }

  private reportBrokerStatus (up: boolean): void {
    if (up) this.log.info({ broker: 'up' }, 'broker reachable again')
    else this.log.warn({ broker: 'down' }, 'broker unreachable')
  }

  /** This node's figures, for the node registry and GET /api/info. */
  private describe (): NodeInfo {
    return {
      id: this.id,
      startedAt: this.startedAt,
      ...this.hub.counts,
      // rss() alone: memoryUsage() walks the V8 heap spaces too, and this runs at every registry heartbeat.
      memory: process.memoryUsage.rss(),
      deliveries: this.stats.deliveries,
      brokerUp: this.broker.up,
      sampledAt: Date.now()
    }
  }
}
