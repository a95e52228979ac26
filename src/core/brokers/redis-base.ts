// What the two Redis brokers share: one Redis (redis.ts) and a Redis Cluster (redis-cluster.ts) store
// the same keys and run the same publish and history scripts, and differ only in their connections:
// how a topic's channel is subscribed, when a topic's Redis counts as down, and how presence and the
// registry are written (one script, or one slot at a time: `registry`). This class is the broker seam
// on top of those connections; each subclass supplies them.
//
// The command connection is either the broker's own (opened from a URL or seed list, closed by close())
// or a client handed over (the `redis` option: a host's app.redis), which the broker uses and never
// closes. A handed client keeps the options its owner gave it, typically ioredis' defaults: an offline
// queue, no command timeout. So nothing is sent on it unless it is ready (`unreachable`, as on our own),
// and a command it leaves unanswered fails after COMMAND_TIMEOUT_MS like one on our own connection.
import type { Cluster, Redis } from 'ioredis'
import {
  BrokerUnavailableError, type Broker, type BrokerListener, type BrokerPublishOptions, type ControlBus, type ControlMessage, type HistoryQuery,
  type HistoryResult, type NodeInfo, type NodeRegistry, type PresenceEntry, type PresenceStore, type PublishOutcome
} from '../broker.js'
import { newEpoch } from '../epoch.js'
import type { PublicationInput } from '../protocol.js'
import { EMPTY_EPOCH } from './history.js'
import { checkRedisClient, commandTimeoutOf, isClusterClient, type RedisClientLike } from './redis-client-like.js'
import { COMMAND_TIMEOUT_MS, quit, toBrokerError } from './redis-client.js'
import { ControlLog, type LogEntry } from './redis-control-log.js'
import { decodeEntry, decodePosition, encodeEventPayload, messageFrameParts, type StreamEntry } from './redis-codec.js'
import { TopicFeed } from './redis-feed.js'
import { RedisKeys } from './redis-keys.js'
import type { RedisRegistry } from './redis-registry.js'
import type { RunScript } from './redis-scripts.js'
import type { RedisBrokerSettings } from './redis-settings.js'

export type { RedisBrokerSettings }

const DEFAULT_IDEMPOTENCY_TTL_MS = 300_000
/** Topics whose gaps are filled at the same time after a reconnect. */
const FILL_CONCURRENCY = 64
/** The control log keeps (about) the newest this many messages of the last CONTROL_LOG_RETENTION_MS. */
const CONTROL_LOG_MAX_ENTRIES = 10_000
const CONTROL_LOG_RETENTION_MS = 3_600_000

export abstract class RedisBrokerBase implements Broker, PresenceStore, ControlBus, NodeRegistry {
  readonly presenceStore: PresenceStore = this
  readonly controlBus: ControlBus = this
  readonly nodeRegistry: NodeRegistry = this
  /**
   * The command connection. Other plugins may use it (e.g. a rate-limit store); do not close it. It may
   * be a client handed over, with an offline queue: check `status` before sending on it.
   */
  abstract readonly commands: Redis | Cluster
  protected abstract readonly run: RunScript
  protected abstract readonly registry: RedisRegistry
  /** `spublish` on a Cluster: a topic's publications stay within its shard. */
  protected abstract readonly publishScript: 'publish' | 'spublish'
  protected readonly keys: RedisKeys
  protected readonly heartbeatInterval: number
  protected readonly nodeTtl: number
  protected listener?: BrokerListener
  protected closing = false
  protected isUp = false
  protected heartbeat?: NodeJS.Timeout
  protected readonly feed = new TopicFeed(() => this.listener)
  /** Heals the control messages pub/sub lost: each subclass starts it, and reconciles after (re)subscribing the control channel. */
  protected readonly controlLog: ControlLog
  /** The presence entries added through this broker, written back after Redis comes back. */
  private readonly localPresence = new Map<string, Map<string, PresenceEntry>>()
  /** Whether close() closes the command connection: the broker opened it and did not release it. */
  private ownsCommands = true
  private handed = false
  /** Set for a handed client without a command timeout of its own (or a longer one): ours, in ms. */
  private commandDeadline?: number
  /** Takes this broker's listeners off a handed client, at close. */
  private readonly detachers: Array<() => void> = []
  /** This broker's connections with a heartbeat check in flight (probe). */
  protected readonly probing = new WeakSet<Redis>()

  constructor (protected readonly settings: RedisBrokerSettings) {
    this.keys = new RedisKeys(settings.prefix)
    this.heartbeatInterval = settings.heartbeatInterval ?? 1000
    this.nodeTtl = settings.nodeTtl ?? 5000
    this.controlLog = new ControlLog({
      read: async (after, count) => await this.command(undefined, () => this.commands.xrange(this.keys.controlLog, `(${after}`, '+', 'COUNT', count)) as LogEntry[],
      apply: (message, sentAt) => this.listener?.control(message, sentAt),
      interval: settings.controlReconcileInterval
    })
  }

  abstract start (listener: BrokerListener): Promise<void>
  abstract subscribe (topic: string): Promise<void>
  abstract unsubscribe (topic: string): Promise<void>
  /** Why the Redis holding `topic` (undefined: any command) cannot take a command now; undefined: it can. */
  protected abstract unreachable (topic: string | undefined): BrokerUnavailableError | undefined
  /** Sends a payload on a topic channel (PUBLISH, or SPUBLISH on a Cluster). */
  protected abstract sendOnChannel (channel: string, payload: string): Promise<unknown>
  /** The subscriber connections, closed after the command connection when the broker closes. */
  protected abstract subscribers (): Array<Redis | Cluster>

  get up (): boolean {
    return this.isUp
  }

  /** True when the command connection is a client handed over, which close() leaves open. */
  get handedClient (): boolean {
    return this.handed
  }

  /** The command connection, shared with the plugins (Broker.sharedRedis). */
  get sharedRedis (): Redis | Cluster {
    return this.commands
  }

  /**
   * Gives the close of the command connection the broker opened to the caller, which closes it after
   * close() (the plugin hands it to @fastify/redis). Undefined when it is not the broker's to give, or
   * not ready yet (@fastify/redis would hold the start until it is; a connection still down stays the
   * broker's, which closes it in close()).
   */
  releaseCommands (): Redis | Cluster | undefined {
    if (!this.ownsCommands || this.closing || this.commands.status !== 'ready') return undefined
    this.ownsCommands = false
    return this.commands
  }

  /**
   * Leaves the registry (and presence) at once instead of after nodeTtl, and closes every connection
   * it opened: a handed client (or a released one) is left open.
   */
  async close (): Promise<void> {
    if (this.closing) return
    this.closing = true
    this.isUp = false
    clearInterval(this.heartbeat)
    this.controlLog.stop()
    if (this.commands.status === 'ready') await this.bounded(this.registry.depart()).catch(() => {})
    await Promise.all([...(this.ownsCommands ? [this.commands] : []), ...this.subscribers()].map(quit))
    for (const detach of this.detachers.splice(0)) detach()
    this.feed.clear()
    this.listener = undefined
  }

  /**
   * Takes `client` as the command connection, handed over: never closed; its listeners (`on`) are
   * taken off at close; commands get our timeout when it has none as short.
   */
  protected adopt (client: RedisClientLike, cluster: boolean): void {
    const refuse = (message: string): never => { throw new Error(`${this.constructor.name} client ${message}`) }
    checkRedisClient(client, refuse)
    if (isClusterClient(client) !== cluster) refuse(cluster ? 'is not a Cluster client: use RedisBroker' : 'is a Cluster client: use RedisClusterBroker')
    this.ownsCommands = false
    this.handed = true
    const timeout = commandTimeoutOf(client)
    if (timeout === undefined || timeout <= 0 || timeout > COMMAND_TIMEOUT_MS) this.commandDeadline = COMMAND_TIMEOUT_MS
  }

  /** client.on(event, listener), taken off again at close when the client is a handed one. */
  protected listenOn (client: Redis | Cluster, event: string, listener: (...args: any[]) => void): void {
    client.on(event, listener)
    if (this.handed && client === this.commands) this.detachers.push(() => { client.off(event, listener) })
  }

  /**
   * Runs `send`, or fails at once with BrokerUnavailableError when the Redis holding `topic` is down:
   * nothing waits for a Redis that is away. Redis errors become broker errors (toBrokerError).
   */
  protected async command<T> (topic: string | undefined, send: () => Promise<T>): Promise<T> {
    const down = this.unreachable(topic)
    if (down !== undefined) throw down
    try {
      return await this.bounded(send())
    } catch (err) {
      throw toBrokerError(err)
    }
  }

  /** `reply`, failing with BrokerUnavailableError after our command timeout on a handed client without one. */
  protected bounded<T> (reply: Promise<T>): Promise<T> {
    const deadline = this.commandDeadline
    if (deadline === undefined) return reply
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new BrokerUnavailableError(`Redis did not answer within ${deadline} ms`)), deadline)
    })
    return Promise.race([reply, late]).finally(() => clearTimeout(timer))
  }

  // ---- Broker: publications and history ----

  async publish (input: PublicationInput, options: BrokerPublishOptions = {}): Promise<PublishOutcome> {
    const { topic } = input
    const ts = Date.now()
    const { head, tail } = messageFrameParts(topic, input.dataJson ?? JSON.stringify(input.data), ts, input.from)
    const keys = [this.keys.meta(topic), this.keys.stream(topic)]
    if (options.idempotencyKey !== undefined) keys.push(this.keys.idempotency(topic, options.idempotencyKey))
    const reply = await this.command(topic, () => this.run(this.publishScript, keys, [
      newEpoch(), this.settings.historyTtl * 1000, this.settings.historySize, ts, head, tail,
      this.keys.channel(topic), options.idempotencyTtlMs ?? DEFAULT_IDEMPOTENCY_TTL_MS
    ]))
    return decodePosition(reply)
  }

  async publishEvent (topic: string, frame: string): Promise<void> {
    await this.command(topic, () => this.sendOnChannel(this.keys.channel(topic), encodeEventPayload(frame)))
  }

  async history (topic: string, query: HistoryQuery = {}): Promise<HistoryResult> {
    const limit = query.limit === undefined ? -1 : Math.max(0, query.limit)
    const reply = await this.command(topic, () => this.run('history', [this.keys.meta(topic), this.keys.stream(topic)], [
      EMPTY_EPOCH, this.settings.historyTtl * 1000, limit, query.since?.epoch ?? '', query.since?.offset ?? 0
    ])) as [string, string, StreamEntry[], number]
    const [epoch, offset, entries, newestFirst] = reply
    const publications = entries.map(entry => decodeEntry(topic, epoch, entry))
    if (newestFirst === 1) publications.reverse()
    return { epoch, offset: Number(offset), publications }
  }

  /** Everything a subscriber connection receives: control messages, publications, events. */
  protected receive (channel: string, payload: string): void {
    if (channel === this.keys.control) {
      let parsed: ControlMessage & { logId?: unknown }
      try {
        parsed = JSON.parse(payload)
      } catch {
        return
      }
      if (this.listener === undefined || typeof parsed !== 'object' || parsed === null) return
      const { logId, ...message } = parsed
      this.controlLog.received(message, typeof logId === 'string' ? logId : undefined)
      return
    }
    const topic = this.keys.topicOf(channel)
    if (topic !== undefined) this.feed.receive(topic, payload)
  }

  /** Delivers what `topics` missed while their connection was away (they must be `held` first). */
  protected async fillGaps (topics: readonly string[]): Promise<void> {
    for (let i = 0; i < topics.length; i += FILL_CONCURRENCY) {
      await Promise.all(topics.slice(i, i + FILL_CONCURRENCY).map(topic => this.feed.fill(topic, query => this.history(topic, query))))
    }
  }

  // ---- ControlBus: control messages and revocation ----

  /**
   * Appends the message to the control log and PUBLISHes it on the control channel, in one script
   * (redis-scripts.ts CONTROL): a node whose subscription misses the PUBLISH applies it from the log.
   * On a Cluster the script runs on the log's master, whose plain PUBLISH reaches every node; all
   * control messages then take the same path and arrive in the log's order.
   */
  async sendControl (message: ControlMessage): Promise<void> {
    await this.command(undefined, () => this.run('control', [this.keys.controlLog], [
      this.keys.control, JSON.stringify(message), CONTROL_LOG_MAX_ENTRIES, CONTROL_LOG_RETENTION_MS
    ]))
  }

  async revoke (jti: string, untilMs: number): Promise<void> {
    const key = this.keys.revoked(jti)
    // PXAT in the past would be refused; a revocation that already ended is simply not there.
    if (untilMs <= Date.now()) await this.command(undefined, () => this.commands.del(key))
    else await this.command(undefined, () => this.commands.set(key, '1', 'PXAT', untilMs))
  }

  async isRevoked (jti: string): Promise<boolean> {
    return (await this.command(undefined, () => this.commands.exists(this.keys.revoked(jti)))) === 1
  }

  // ---- PresenceStore ----

  async addPresence (topic: string, entry: PresenceEntry): Promise<void> {
    let entries = this.localPresence.get(topic)
    if (entries === undefined) this.localPresence.set(topic, entries = new Map())
    entries.set(entry.connectionId, entry)
    await this.command(topic, () => this.registry.addPresence(topic, entry))
  }

  async removePresence (topic: string, connectionId: string): Promise<void> {
    const entries = this.localPresence.get(topic)
    const node = entries?.get(connectionId)?.node ?? this.settings.nodeId
    entries?.delete(connectionId)
    if (entries?.size === 0) this.localPresence.delete(topic)
    await this.command(topic, () => this.registry.removePresence(topic, connectionId, node))
  }

  /** Entries on live nodes only: a node that died drops out once its heartbeat key expires (nodeTtl). */
  async presence (topic: string): Promise<PresenceEntry[]> {
    return await this.command(topic, () => this.registry.presence(topic))
  }

  /** Replaces this node's entries in Redis by the ones it holds (Redis may have lost or kept others). */
  protected async restorePresence (): Promise<void> {
    await this.registry.clearPresence()
    const writes: Array<Promise<unknown>> = []
    for (const [topic, entries] of this.localPresence) {
      for (const entry of entries.values()) writes.push(this.registry.addPresence(topic, entry))
    }
    await Promise.all(writes)
  }

  // ---- NodeRegistry ----

  /** The live nodes: those whose heartbeat key has not expired. This node reports fresh figures. */
  async nodes (): Promise<NodeInfo[]> {
    const nodes = (await this.command(undefined, () => this.registry.nodes())).filter(node => node.id !== this.settings.nodeId)
    if (this.listener !== undefined) nodes.push(this.listener.describe())
    return nodes.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  }

  /** Refreshes the heartbeat key; returns false when it had expired (this node may have been swept). */
  protected async announce (): Promise<boolean> {
    if (this.listener === undefined) return true
    return await this.registry.announce(this.listener.describe())
  }
}
