// The Redis broker: many nodes behave as one. Read it top to bottom:
//
// - publish runs ONE Lua script (redis-scripts.ts) that takes the topic's next offset, appends the
//   serialized `message` frame to the topic's history stream and PUBLISHes it, so every node sees
//   the same offsets in the same order.
// - each node holds one dedicated subscriber connection, subscribed to the channel of every topic it
//   has local subscribers for (the hub decides when) and to the control channel.
// - when either connection drops, `up` turns false (publishes fail with BrokerUnavailableError,
//   readiness is 503). When both are back, the node re-announces itself, writes its presence back,
//   resubscribes every topic and fills each topic's gap from history, and only then turns `up` again.
//   Redis out of reach at start is the same outage: the node starts with `up` false.
// - control messages (revoke, disconnect) travel on one control channel; revocations are keys that
//   expire when the token would have.
// - a heartbeat key per node (NodeInfo, expiring) is the node registry; presence entries of a node
//   whose key expired are ignored and swept.
// It is every part of the broker seam (src/core/broker.ts): Broker, PresenceStore, ControlBus and
// NodeRegistry, one section each below.
import type { Redis } from 'ioredis'
import {
  BrokerUnavailableError, type Broker, type BrokerListener, type BrokerPublishOptions, type ControlBus, type ControlMessage,
  type HistoryQuery, type HistoryResult, type NodeInfo, type NodeRegistry, type PresenceEntry, type PresenceStore,
  type PublishOutcome
} from '../broker.js'
import { newEpoch } from '../epoch.js'
import type { Publication, PublicationInput, StreamPosition } from '../protocol.js'
import { createClient, redactUrl, toBrokerError } from './redis-client.js'
import { decodeEntry, decodePayload, decodePosition, encodeEventPayload, messageFrameParts, type StreamEntry } from './redis-codec.js'
import { EMPTY_EPOCH } from './history.js'
import { RedisKeys } from './redis-keys.js'
import { defineScripts, type RunScript } from './redis-scripts.js'

export interface RedisBrokerOptions {
  /** redis:// or rediss:// URL (REDIS_URL). */
  url: string
  /** Prefix of every key and channel (REDIS_PREFIX). */
  prefix: string
  nodeId: string
  historySize: number
  /** Seconds a topic's stream (offsets and history) outlives its last publication. */
  historyTtl: number
  /** Milliseconds between two heartbeats of this node. Default 1000. */
  heartbeatInterval?: number
  /** Milliseconds a node stays listed (and its presence counted) after its last heartbeat. Default 5000. */
  nodeTtl?: number
  /** Milliseconds start() waits for Redis before failing. Default 5000. */
  connectTimeout?: number
}

const DEFAULT_IDEMPOTENCY_TTL_MS = 300_000
/** A node's presence index outlives it this long, so that surviving nodes can sweep its entries. */
const PRESENCE_INDEX_TTL_MS = 24 * 3600_000
/** Pause before retrying a recovery that failed while both connections were up. */
const RECOVERY_RETRY_MS = 500
/** Channels per SUBSCRIBE command when resubscribing many topics at once. */
const SUBSCRIBE_BATCH = 1000
/** Topics whose gaps are filled at the same time after a reconnect. */
const FILL_CONCURRENCY = 64
/**
 * A connection that leaves a heartbeat unanswered this long is dropped and reconnected: a stalled
 * Redis or a half-open TCP connection (no RST after a network cut) would otherwise look healthy.
 */
const STALL_TIMEOUT_MS = 3000

export class RedisBroker implements Broker, PresenceStore, ControlBus, NodeRegistry {
  readonly presenceStore: PresenceStore = this
  readonly controlBus: ControlBus = this
  readonly nodeRegistry: NodeRegistry = this
  /** The command connection. Other plugins may use it (e.g. a rate-limit store); do not close it. */
  readonly commands: Redis
  /** Dedicated to SUBSCRIBE: a subscribed connection is kept out of the command path. */
  private readonly subscriber: Redis
  private readonly run: RunScript
  private readonly keys: RedisKeys
  private readonly heartbeatInterval: number
  private readonly nodeTtl: number
  private listener?: BrokerListener
  private isUp = false
  private wasUp = false
  private closing = false
  /** Bumped whenever a connection closes: a recovery that saw it change must start over. */
  private losses = 0
  private recovery?: Promise<void>
  /** Set while start() waits: told when the broker is up, or when Redis refused a recovery. */
  private startWaiter?: (refusal?: Error) => void
  private lastConnectionError?: Error
  private heartbeat?: NodeJS.Timeout
  /** Connections with a heartbeat check in flight. */
  private readonly probing = new Set<Redis>()
  /** Topics this node is subscribed to, as subscribe/unsubscribe asked. */
  private readonly topics = new Set<string>()
  /**
   * Per topic, the position of the last publication handed to the listener: where a gap fill reads
   * from, and at or below which `deliver` drops repeats (Subscription keeps the same per connection).
   */
  private readonly lastDelivered = new Map<string, StreamPosition>()
  /** Topics being gap-filled after a reconnect, with the live publications held back meanwhile. */
  private readonly held = new Map<string, Publication[]>()
  /** The presence entries added through this broker, written back after Redis comes back. */
  private readonly localPresence = new Map<string, Map<string, PresenceEntry>>()

  constructor (private readonly options: RedisBrokerOptions) {
    this.keys = new RedisKeys(options.prefix)
    this.heartbeatInterval = options.heartbeatInterval ?? 1000
    this.nodeTtl = options.nodeTtl ?? 5000
    // CLIENT LIST shows which node and role a connection belongs to (names cannot hold spaces).
    const name = (role: string): string => `${options.prefix}${role}:${options.nodeId}`.replace(/\s/g, '_')
    this.commands = createClient(options.url, name('cmd'))
    this.subscriber = createClient(options.url, name('sub'))
    this.run = defineScripts(this.commands)
    for (const client of [this.commands, this.subscriber]) {
      // Connection errors surface as `up` and the listener's status; without a listener ioredis
      // would print every failed reconnect attempt.
      client.on('error', err => { if (!isRefusal(err)) this.lastConnectionError = err })
      client.on('close', () => this.lost())
      client.on('ready', () => { if (this.listener !== undefined) void this.recover() })
    }
    this.subscriber.on('message', (channel: string, payload: string) => this.receive(channel, payload))
  }

  get up (): boolean {
    return this.isUp
  }

  /**
   * Connects both connections and announces the node. Redis out of reach is an outage like any other,
   * at start too: start resolves with `up` false (readiness 503, publishes refused) and the node comes
   * up by itself once Redis answers. Redis that answers with a refusal (a wrong password, an ACL that
   * forbids our commands) is a configuration error instead: start rejects with the reason.
   */
  async start (listener: BrokerListener): Promise<void> {
    this.listener = listener
    const refusal = await this.firstContact(this.options.connectTimeout ?? 5000)
    if (refusal !== undefined) {
      await this.close()
      throw new Error(`Redis at ${redactUrl(this.options.url)} (REDIS_URL) refused this node: ${refusal.message}`)
    }
    // Coming up later is news worth the listener's `status(true)`, like the end of any outage.
    if (!this.isUp) this.wasUp = true
    this.heartbeat = setInterval(() => this.beat(), this.heartbeatInterval)
    this.heartbeat.unref()
  }

  /** Where Redis was looked for and why it was last out of reach, for the start-up log. */
  get unreachableReason (): string {
    return `Redis at ${redactUrl(this.options.url)} (REDIS_URL): ${this.lastConnectionError?.message ?? 'no answer yet'}`
  }

  /**
   * Connects both connections and waits for the first verdict: up (undefined), out of reach
   * (undefined, with `up` still false: the first connection error, or no answer within `timeoutMs`),
   * or a refusal (the error Redis answered with).
   */
  private async firstContact (timeoutMs: number): Promise<Error | undefined> {
    const clients = [this.commands, this.subscriber]
    return await new Promise(resolve => {
      const finish = (refusal?: Error): void => {
        clearTimeout(timer)
        this.startWaiter = undefined
        for (const client of clients) client.off('error', onError)
        resolve(refusal)
      }
      const onError = (err: Error): void => finish(isRefusal(err) ? err : undefined)
      const timer = setTimeout(() => finish(), timeoutMs)
      this.startWaiter = finish
      for (const client of clients) {
        client.on('error', onError)
        if (client.status === 'wait') client.connect().catch(() => {})
      }
    })
  }

  // ---- Broker: publications and history ----

  async publish (input: PublicationInput, options: BrokerPublishOptions = {}): Promise<PublishOutcome> {
    const { topic } = input
    const ts = Date.now()
    const { head, tail } = messageFrameParts(topic, JSON.stringify(input.data), ts, input.from)
    const keys = [this.keys.meta(topic), this.keys.stream(topic)]
    if (options.idempotencyKey !== undefined) keys.push(this.keys.idempotency(options.idempotencyKey))
    const reply = await this.command(() => this.run('publish', keys, [
      newEpoch(), this.options.historyTtl * 1000, this.options.historySize, ts, head, tail,
      this.keys.channel(topic), options.idempotencyTtlMs ?? DEFAULT_IDEMPOTENCY_TTL_MS
    ]))
    return decodePosition(reply)
  }

  async publishEvent (topic: string, frame: string): Promise<void> {
    await this.command(() => this.commands.publish(this.keys.channel(topic), encodeEventPayload(frame)))
  }

  async history (topic: string, query: HistoryQuery = {}): Promise<HistoryResult> {
    const limit = query.limit === undefined ? -1 : Math.max(0, query.limit)
    const reply = await this.command(() => this.run('history', [this.keys.meta(topic), this.keys.stream(topic)], [
      EMPTY_EPOCH, this.options.historyTtl * 1000, limit, query.since?.epoch ?? '', query.since?.offset ?? 0
    ])) as [string, string, StreamEntry[], number]
    const [epoch, offset, entries, newestFirst] = reply
    const publications = entries.map(entry => decodeEntry(topic, epoch, entry))
    if (newestFirst === 1) publications.reverse()
    return { epoch, offset: Number(offset), publications }
  }

  // ---- Broker: subscriptions (the hub calls these for the first and after the last local subscriber) ----

  /** Resolves once Redis confirmed the SUBSCRIBE, so no publication after it can be missed. */
  async subscribe (topic: string): Promise<void> {
    this.topics.add(topic)
    try {
      if (this.subscriber.status !== 'ready') throw new BrokerUnavailableError('Redis is unreachable')
      await this.subscriber.subscribe(this.keys.channel(topic))
    } catch (err) {
      this.forget(topic)
      throw toBrokerError(err)
    }
  }

  async unsubscribe (topic: string): Promise<void> {
    this.forget(topic)
    // A dropped connection holds no subscriptions, and recovery only renews the topics still wanted.
    if (this.subscriber.status !== 'ready') return
    try {
      await this.subscriber.unsubscribe(this.keys.channel(topic))
    } catch (err) {
      if (this.subscriber.status === 'ready') throw toBrokerError(err)
    }
  }

  private forget (topic: string): void {
    this.topics.delete(topic)
    this.lastDelivered.delete(topic)
    this.held.delete(topic)
  }

  /** Everything the subscriber connection receives: control messages, publications, events. */
  private receive (channel: string, payload: string): void {
    if (channel === this.keys.control) {
      let message: ControlMessage
      try {
        message = JSON.parse(payload)
      } catch {
        return
      }
      this.listener?.control(message)
      return
    }
    const topic = this.keys.topicOf(channel)
    if (topic === undefined || !this.topics.has(topic)) return
    const decoded = decodePayload(payload)
    if (decoded === undefined) return
    if (decoded.type === 'event') {
      this.listener?.event(topic, decoded.frame)
      return
    }
    const publication: Publication = { topic, epoch: decoded.epoch, offset: decoded.offset, ts: decoded.ts, frame: decoded.frame }
    const held = this.held.get(topic)
    if (held !== undefined) held.push(publication)
    else this.deliver(publication)
  }

  /** Hands a publication to the listener once: a gap fill overlaps live traffic, this drops the repeats. */
  private deliver (publication: Publication): void {
    const last = this.lastDelivered.get(publication.topic)
    if (last !== undefined && last.epoch === publication.epoch && publication.offset <= last.offset) return
    this.lastDelivered.set(publication.topic, { epoch: publication.epoch, offset: publication.offset })
    this.listener?.publication(publication)
  }

  // ---- ControlBus: control messages and revocation ----

  async sendControl (message: ControlMessage): Promise<void> {
    await this.command(() => this.commands.publish(this.keys.control, JSON.stringify(message)))
  }

  async revoke (jti: string, untilMs: number): Promise<void> {
    const key = this.keys.revoked(jti)
    // PXAT in the past would be refused; a revocation that already ended is simply not there.
    if (untilMs <= Date.now()) await this.command(() => this.commands.del(key))
    else await this.command(() => this.commands.set(key, '1', 'PXAT', untilMs))
  }

  async isRevoked (jti: string): Promise<boolean> {
    return (await this.command(() => this.commands.exists(this.keys.revoked(jti)))) === 1
  }

  // ---- PresenceStore ----

  async addPresence (topic: string, entry: PresenceEntry): Promise<void> {
    let entries = this.localPresence.get(topic)
    if (entries === undefined) this.localPresence.set(topic, entries = new Map())
    entries.set(entry.connectionId, entry)
    await this.command(() => this.writePresence(topic, entry))
  }

  async removePresence (topic: string, connectionId: string): Promise<void> {
    const entries = this.localPresence.get(topic)
    const node = entries?.get(connectionId)?.node ?? this.options.nodeId
    entries?.delete(connectionId)
    if (entries?.size === 0) this.localPresence.delete(topic)
    await this.command(() => this.run('removePresence', [this.keys.presence(topic), this.keys.nodePresence + node], [
      connectionId, `${topic}\n${connectionId}`
    ]))
  }

  /** Entries on live nodes only: a node that died drops out once its heartbeat key expires (nodeTtl). */
  async presence (topic: string): Promise<PresenceEntry[]> {
    const entries = await this.command(() => this.run('presence', [this.keys.presence(topic)], [this.keys.node])) as string[]
    return entries.map(json => JSON.parse(json) as PresenceEntry)
  }

  private async writePresence (topic: string, entry: PresenceEntry): Promise<unknown> {
    return this.run('addPresence', [this.keys.presence(topic), this.keys.nodePresence + entry.node], [
      entry.connectionId, JSON.stringify(entry), `${topic}\n${entry.connectionId}`, PRESENCE_INDEX_TTL_MS
    ])
  }

  /** Replaces this node's entries in Redis by the ones it holds (Redis may have lost or kept others). */
  private async restorePresence (): Promise<void> {
    const { nodePresence, presenceHead, presenceTail } = this.keys
    await this.run('clearPresence', [nodePresence + this.options.nodeId], [presenceHead, presenceTail])
    const writes: Array<Promise<unknown>> = []
    for (const [topic, entries] of this.localPresence) {
      for (const entry of entries.values()) writes.push(this.writePresence(topic, entry))
    }
    await Promise.all(writes)
  }

  // ---- NodeRegistry ----

  /** The live nodes: those whose heartbeat key has not expired. This node reports fresh figures. */
  async nodes (): Promise<NodeInfo[]> {
    const infos = await this.command(() => this.run('nodes', [this.keys.nodes], [this.keys.node])) as string[]
    const nodes = infos.map(json => JSON.parse(json) as NodeInfo).filter(node => node.id !== this.options.nodeId)
    if (this.listener !== undefined) nodes.push(this.listener.describe())
    return nodes.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  }

  /** Refreshes the heartbeat key; returns false when it had expired (this node may have been swept). */
  private async announce (): Promise<boolean> {
    if (this.listener === undefined) return true
    const { nodeId } = this.options
    const { node, nodes, nodePresence, presenceHead, presenceTail } = this.keys
    const registered = await this.run('announce', [node + nodeId, nodes, nodePresence + nodeId], [
      nodeId, JSON.stringify(this.listener.describe()), this.nodeTtl, PRESENCE_INDEX_TTL_MS,
      node, nodePresence, presenceHead, presenceTail
    ])
    return registered === 1
  }

  /** Every heartbeatInterval: refresh the registry entry and check that both connections answer. */
  private beat (): void {
    if (this.closing) return
    this.probe(this.commands, () => this.announce().then(async registered => {
      if (!registered && this.isUp) await this.restorePresence()
    }))
    this.probe(this.subscriber, () => this.subscriber.ping())
  }

  private probe (client: Redis, check: () => Promise<unknown>): void {
    if (client.status !== 'ready' || this.probing.has(client)) return
    this.probing.add(client)
    const timer = setTimeout(() => { if (client.status === 'ready' && !this.closing) client.disconnect(true) }, STALL_TIMEOUT_MS)
    timer.unref()
    check().catch(() => {}).finally(() => {
      clearTimeout(timer)
      this.probing.delete(client)
    })
  }

  // ---- outages ----

  private lost (): void {
    this.losses++
    if (this.closing || !this.isUp) return
    this.isUp = false
    this.listener?.status(false)
  }

  private bothReady (): boolean {
    return this.commands.status === 'ready' && this.subscriber.status === 'ready'
  }

  /** Brings the broker up once both connections are ready; one recovery at a time. */
  private recover (): Promise<void> {
    this.recovery ??= this.recoverLoop().finally(() => {
      this.recovery = undefined
      // A connection that came back while the loop was giving up.
      if (!this.closing && !this.isUp && this.bothReady()) void this.recover()
    })
    return this.recovery
  }

  private async recoverLoop (): Promise<void> {
    while (!this.closing && !this.isUp && this.bothReady()) {
      const losses = this.losses
      try {
        await this.restore()
      } catch (err) {
        // Refused (an ACL forbidding EVALSHA): at start that is a configuration error; later, the
        // loop retries like after any failure.
        if (isRefusal(err)) this.startWaiter?.(err as Error)
        await new Promise(resolve => setTimeout(resolve, RECOVERY_RETRY_MS).unref())
        continue
      }
      if (losses !== this.losses || this.closing || !this.bothReady()) continue
      this.isUp = true
      this.startWaiter?.()
      if (this.wasUp) this.listener?.status(true)
      this.wasUp = true
    }
  }

  /**
   * Announce, write presence back, resubscribe (live publications of the topics subscribed now are
   * `held`), then per topic: deliver what history holds after the last delivered publication, then
   * what was held. Nothing is lost that history still has, and `deliver` drops the overlap.
   */
  private async restore (): Promise<void> {
    await this.announce()
    await this.restorePresence()
    const topics = [...this.topics]
    for (const topic of topics) this.held.set(topic, [])
    const channels = [this.keys.control, ...topics.map(topic => this.keys.channel(topic))]
    for (let i = 0; i < channels.length; i += SUBSCRIBE_BATCH) {
      await this.subscriber.subscribe(...channels.slice(i, i + SUBSCRIBE_BATCH))
    }
    // A topic unsubscribed while the batch was on its way was subscribed again by it.
    const dropped = topics.filter(topic => !this.topics.has(topic)).map(topic => this.keys.channel(topic))
    if (dropped.length > 0) await this.subscriber.unsubscribe(...dropped)
    for (let i = 0; i < topics.length; i += FILL_CONCURRENCY) {
      await Promise.all(topics.slice(i, i + FILL_CONCURRENCY).map(topic => this.fillGap(topic)))
    }
  }

  private async fillGap (topic: string): Promise<void> {
    if (!this.topics.has(topic)) return
    const last = this.lastDelivered.get(topic)
    const history = await this.history(topic, last === undefined ? {} : { since: last })
    const held = this.held.get(topic) ?? []
    this.held.delete(topic)
    for (const publication of history.publications) this.deliver(publication)
    for (const publication of held) this.deliver(publication)
  }

  // ---- plumbing ----

  /** Runs a command on the command connection; fails at once with BrokerUnavailableError when it is down. */
  private async command<T> (send: () => Promise<T>): Promise<T> {
    if (this.commands.status !== 'ready') throw new BrokerUnavailableError('Redis is unreachable')
    try {
      return await send()
    } catch (err) {
      throw toBrokerError(err)
    }
  }

  /** Leaves the registry (and presence) at once instead of after nodeTtl, and closes both connections. */
  async close (): Promise<void> {
    if (this.closing) return
    this.closing = true
    this.isUp = false
    clearInterval(this.heartbeat)
    if (this.commands.status === 'ready') {
      const { nodeId } = this.options
      const { node, nodes, nodePresence, presenceHead, presenceTail } = this.keys
      await this.run('depart', [node + nodeId, nodes, nodePresence + nodeId], [nodeId, presenceHead, presenceTail]).catch(() => {})
    }
    await Promise.all([quit(this.commands), quit(this.subscriber)])
    this.held.clear()
    this.listener = undefined
  }
}

/** Redis answered "no" (NOAUTH, WRONGPASS, NOPERM...): a reply that retrying will not change. */
function isRefusal (err: unknown): boolean {
  return !(toBrokerError(err) instanceof BrokerUnavailableError)
}

/** QUIT (or drop) the connection and wait, briefly, until ioredis reports it ended. */
async function quit (client: Redis): Promise<void> {
  const status = client.status
  if (status === 'end') return
  let timer: NodeJS.Timeout | undefined
  const ended = new Promise<void>(resolve => {
    client.once('end', resolve)
    timer = setTimeout(resolve, 1000)
    timer.unref()
  })
  if (status === 'ready') await client.quit().catch(() => client.disconnect())
  else client.disconnect()
  // Between two reconnect attempts there is no socket left to close, and no 'end' event comes.
  if (status !== 'reconnecting' && status !== 'close') await ended
  clearTimeout(timer)
}
