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
// - control messages (revoke, disconnect) travel on one control channel, and are also appended to the
//   control log, read every few seconds and after each resubscription, so that one the subscriber
//   missed is applied late instead of never (redis-control-log.ts); revocations are keys that expire
//   when the token would have.
// - a heartbeat key per node (NodeInfo, expiring) is the node registry; presence entries of a node
//   whose key expired are ignored and swept.
// It is every part of the broker seam (src/core/broker.ts): Broker, PresenceStore, ControlBus and
// NodeRegistry; what a Redis Cluster shares with it (publish, history, presence, registry, control)
// is in redis-base.ts, and this file keeps the connections.
//
// The connections: its own two, opened from a URL, or a client handed over (a host's app.redis) for
// the commands and a duplicate of it, with our options, as the subscriber (see redis-base.ts).
import type { Redis } from 'ioredis'
import { BrokerUnavailableError, type BrokerListener } from '../broker.js'
import { RedisBrokerBase, type RedisBrokerSettings } from './redis-base.js'
import { clientAddress, type RedisClientLike } from './redis-client-like.js'
import { createClient, isRefusal, ownConnection, probe, redactUrl, toBrokerError } from './redis-client.js'
import { ScriptedRegistry, type RedisRegistry } from './redis-registry.js'
import { defineScripts, type RunScript } from './redis-scripts.js'

export interface RedisBrokerOptions extends RedisBrokerSettings {
  /** redis:// or rediss:// URL (REDIS_URL): the broker opens its two connections, and closes them. */
  url?: string
  /**
   * Instead of `url`: an ioredis client (not a Cluster: RedisClusterBroker) to run the commands on,
   * typically a host's app.redis. The broker never closes it; its subscriber connection is
   * `client.duplicate()` with the broker's own options (redis-client.ts), which it closes.
   */
  client?: RedisClientLike
}

/** Pause before retrying a recovery that failed while both connections were up. */
const RECOVERY_RETRY_MS = 500
/** Channels per SUBSCRIBE command when resubscribing many topics at once. */
const SUBSCRIBE_BATCH = 1000

export class RedisBroker extends RedisBrokerBase {
  /** The command connection. Other plugins may use it (e.g. a rate-limit store); do not close it. */
  readonly commands: Redis
  /** Dedicated to SUBSCRIBE: a subscribed connection is kept out of the command path. */
  private readonly subscriber: Redis
  protected readonly run: RunScript
  protected readonly registry: RedisRegistry
  protected readonly publishScript = 'publish'
  private wasUp = false
  /** Bumped whenever a connection closes: a recovery that saw it change must start over. */
  private losses = 0
  private recovery?: Promise<void>
  /** Set while start() waits: told when the broker is up, or when Redis refused a recovery. */
  private startWaiter?: (refusal?: Error) => void
  private lastConnectionError?: Error

  /** Where Redis is, for messages: `Redis at <url> (REDIS_URL)`, never with the password. */
  private readonly where: string

  constructor (private readonly options: RedisBrokerOptions) {
    super(options)
    // CLIENT LIST shows which node and role a connection belongs to (names cannot hold spaces).
    const name = (role: string): string => `${options.prefix}${role}:${options.nodeId}`.replace(/\s/g, '_')
    const { url, client } = options
    if ((url === undefined) === (client === undefined)) throw new Error('RedisBroker takes one of url and client')
    if (client !== undefined) {
      this.adopt(client, false)
      // By its shape: the client may come from another ioredis than ours (another major).
      this.commands = client as unknown as Redis
      this.where = `Redis at ${clientAddress(client)} (the client handed over as \`redis\`)`
    } else {
      this.commands = createClient(url as string, name('cmd'))
      this.where = `Redis at ${redactUrl(url as string)} (REDIS_URL)`
    }
    // The same server, login and TLS as the commands, with our options (ioredis' duplicate()).
    this.subscriber = this.commands.duplicate(ownConnection(name('sub')))
    this.run = defineScripts(this.commands)
    this.registry = new ScriptedRegistry({ run: this.run, keys: this.keys, nodeId: options.nodeId, nodeTtl: this.nodeTtl })
    for (const connection of [this.commands, this.subscriber]) {
      // Connection errors surface as `up` and the listener's status; without a listener ioredis
      // would print every failed reconnect attempt.
      this.listenOn(connection, 'error', (err: Error) => { if (!isRefusal(err)) this.lastConnectionError = err })
      this.listenOn(connection, 'close', () => this.lost())
      this.listenOn(connection, 'ready', () => { if (this.listener !== undefined) void this.recover() })
    }
    this.subscriber.on('message', (channel: string, payload: string) => this.receive(channel, payload))
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
      throw new Error(`${this.where} refused this node: ${refusal.message}`)
    }
    // Coming up later is news worth the listener's `status(true)`, like the end of any outage.
    if (!this.isUp) this.wasUp = true
    this.heartbeat = setInterval(() => this.beat(), this.heartbeatInterval)
    this.heartbeat.unref()
    this.controlLog.start()
  }

  /** Where Redis was looked for and why it was last out of reach, for the start-up log. */
  get unreachableReason (): string {
    return `${this.where}: ${this.lastConnectionError?.message ?? 'no answer yet'}`
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

  // ---- Broker: subscriptions (the hub calls these for the first and after the last local subscriber) ----

  /** Resolves once Redis confirmed the SUBSCRIBE, so no publication after it can be missed. */
  async subscribe (topic: string): Promise<void> {
    this.feed.topics.add(topic)
    try {
      if (this.subscriber.status !== 'ready') throw new BrokerUnavailableError('Redis is unreachable')
      await this.subscriber.subscribe(this.keys.channel(topic))
    } catch (err) {
      this.feed.forget(topic)
      throw toBrokerError(err)
    }
  }

  async unsubscribe (topic: string): Promise<void> {
    this.feed.forget(topic)
    // A dropped connection holds no subscriptions, and recovery only renews the topics still wanted.
    if (this.subscriber.status !== 'ready') return
    try {
      await this.subscriber.unsubscribe(this.keys.channel(topic))
    } catch (err) {
      if (this.subscriber.status === 'ready') throw toBrokerError(err)
    }
  }

  protected async sendOnChannel (channel: string, payload: string): Promise<unknown> {
    return await this.commands.publish(channel, payload)
  }

  /** Every heartbeatInterval: refresh the registry entry and check that both connections answer. */
  private beat (): void {
    if (this.closing) return
    probe(this.commands, () => this.announce().then(async registered => {
      if (!registered && this.isUp) await this.restorePresence()
    }), () => this.closing, this.probing)
    probe(this.subscriber, () => this.subscriber.ping(), () => this.closing, this.probing)
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
    const topics = [...this.feed.topics]
    this.feed.hold(topics)
    const channels = [this.keys.control, ...topics.map(topic => this.keys.channel(topic))]
    for (let i = 0; i < channels.length; i += SUBSCRIBE_BATCH) {
      await this.subscriber.subscribe(...channels.slice(i, i + SUBSCRIBE_BATCH))
    }
    // Control messages sent while the control channel was not subscribed: from the control log.
    void this.controlLog.reconcile()
    // A topic unsubscribed while the batch was on its way was subscribed again by it.
    const dropped = topics.filter(topic => !this.feed.topics.has(topic)).map(topic => this.keys.channel(topic))
    if (dropped.length > 0) await this.subscriber.unsubscribe(...dropped)
    await this.fillGaps(topics)
  }

  // ---- plumbing ----

  protected unreachable (): BrokerUnavailableError | undefined {
    return this.commands.status === 'ready' ? undefined : new BrokerUnavailableError('Redis is unreachable')
  }

  protected subscribers (): Redis[] {
    return [this.subscriber]
  }
}
