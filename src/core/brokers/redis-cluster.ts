// The Redis broker on a Redis Cluster (REDIS_CLUSTER_NODES). Everything one Redis gives works the same
// (redis-base.ts holds what is shared); what differs is the connections. Read it top to bottom:
//
// - commands go through one ioredis Cluster client, which follows the slot map (MOVED/ASK). Every key
//   of a topic carries the `{topic}` hash tag, so the publish script runs on the topic's shard and
//   publishes with SPUBLISH: a publication travels only within its shard.
// - one subscriber connection per shard (per master), not per topic: a topic's channel is SSUBSCRIBEd
//   on the connection of the master that owns its slot (keySlot). Each shard comes and goes on its own:
//   while a shard's connection is down, its topics answer 503 (publish, history, subscribe) and the
//   other shards' topics keep working; when it is back (or its slots moved: a failover, a migration)
//   its topics are subscribed again on the new owner and their gap is filled from history, exactly as
//   one Redis does after an outage. `up` (readiness) stays true while the cluster answers and the
//   control channel is subscribed; `unavailableShards` names the shards that are down.
// - control messages use plain PUBLISH, which a cluster forwards to every node, so the control channel
//   is SUBSCRIBEd on one shard connection (any live one, moving when it drops). Every node sends them
//   with the control script on the master of the control log's slot (redis-base.ts sendControl): they
//   then take one path (the cluster bus between two masters is one ordered link) and arrive in the
//   log's order. A message missed while the control subscription moves is read from the log
//   (redis-control-log.ts), every few seconds and as soon as the subscription is made again.
// - presence and the registry: SlotSafeRegistry (redis-cluster-registry.ts).
// - the Cluster client is its own (from the seed list) or one handed over (a host's app.redis), never
//   closed then (redis-base.ts); the shard subscribers are always its own, made from the Cluster
//   client's options for its node connections (redisOptions: login, TLS) with our options on top.
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { BrokerUnavailableError, type BrokerListener } from '../broker.js'
import { RedisBrokerBase, type RedisBrokerSettings } from './redis-base.js'
import { slotsRefreshIntervalOf, type RedisClientLike } from './redis-client-like.js'
import { connectionOptions, createClient, isRefusal, ownConnection, parseClusterSeeds, probe, quit, toBrokerError } from './redis-client.js'
import { SlotSafeRegistry } from './redis-cluster-registry.js'
import { keySlot, nodeKey, nodeUrl, parseNodeKey, type ClusterNodeAddress } from './redis-cluster-slots.js'
import type { RedisRegistry } from './redis-registry.js'
import { defineScripts, type RunScript } from './redis-scripts.js'

export interface RedisClusterBrokerOptions extends RedisBrokerSettings {
  /**
   * Seed nodes: the client learns the others from them. REDIS_CLUSTER_NODES entries (`host:port`, or
   * `redis[s]://[[username]:password@]host:port`) also carry the credentials and TLS of every connection.
   */
  nodes?: Array<ClusterNodeAddress | string>
  /**
   * Instead of `nodes`: an ioredis Cluster client to run the commands on, typically a host's
   * app.redis. Never closed by the broker; the shard subscribers use its `redisOptions` (login, TLS).
   */
  client?: RedisClientLike
}

/** How often the slot map is read again, to notice a failover or a migration nobody told us about. */
const SLOTS_REFRESH_MS = 2000

/** Pause before subscribing a shard's topics again, or reading their gap, after Redis refused (still loading, MOVED). */
const RESUBSCRIBE_RETRY_MS = 250

/** One master's subscriber connection and whether its topics are subscribed on it right now. */
interface Shard {
  readonly key: string
  readonly client: Redis
  /** True once the topics homed here are subscribed again after the connection (re)opened. */
  live: boolean
  /** Bumped when the connection closes: a resubscription that saw it change is stale. */
  losses: number
}

export class RedisClusterBroker extends RedisBrokerBase {
  /** The Cluster client. Other plugins may use it (the rate-limit store); do not close it. */
  readonly commands: Cluster
  protected readonly run: RunScript
  protected readonly registry: RedisRegistry
  protected readonly publishScript = 'spublish'
  private readonly shards = new Map<string, Shard>()
  /** Per subscribed topic, the shard (master node key) its channel is subscribed on. */
  private readonly homes = new Map<string, string>()
  /** The shard whose connection holds the control channel's SUBSCRIBE. */
  private controlHome?: Shard
  /** The search for a control home under way, so that two never subscribe it twice. */
  private homing?: Promise<void>
  private registered = false
  private wasUp = false
  private lastConnectionError?: Error
  /** Why a plain connection to the first seed failed at start (diagnose()), until the cluster is ready. */
  private seedFailure?: string
  /** Where the cluster is looked for (none for a handed client); messages name them as host:port, never with the credentials. */
  private readonly seedNodes: ClusterNodeAddress[]
  /** How every connection logs in (username, password) and whether it uses TLS. */
  private readonly login: RedisOptions
  /** Rereads the slot map of a handed client that does not do it often enough by itself. */
  private slotsTimer?: NodeJS.Timeout

  constructor (options: RedisClusterBrokerOptions) {
    super(options)
    if ((options.nodes === undefined) === (options.client === undefined)) throw new Error('RedisClusterBroker takes one of nodes and client')
    if (options.client !== undefined) {
      this.adopt(options.client, true)
      // By its shape: the client may come from another ioredis than ours (another major).
      this.commands = options.client as unknown as Cluster
      this.seedNodes = []
      this.login = {}
    } else {
      const { nodes, username, password, tls } = parseClusterSeeds(options.nodes ?? [], message => { throw new Error(`RedisClusterBroker nodes ${message}`) })
      this.seedNodes = nodes
      // rediss://: TLS on every connection, checked against the address each one connects to (a seed by
      // the name it was given, since the identity dnsLookup keeps names unresolved; the other nodes by
      // the address CLUSTER SLOTS reports). A private CA is trusted with NODE_EXTRA_CA_CERTS.
      this.login = { username, password, tls: tls ? {} : undefined }
      this.commands = new Cluster(nodes, {
        lazyConnect: true,
        enableOfflineQueue: false,
        clusterRetryStrategy: times => Math.min(times * 100, 1000),
        slotsRefreshInterval: SLOTS_REFRESH_MS,
        dnsLookup: tls ? (address, callback) => callback(null, address) : undefined,
        redisOptions: { ...connectionOptions(this.connectionName('cmd')), ...this.login }
      })
    }
    this.run = defineScripts(this.commands)
    this.registry = new SlotSafeRegistry(this.commands, { run: this.run, keys: this.keys, nodeId: options.nodeId, nodeTtl: this.nodeTtl })
    this.listenOn(this.commands, 'error', (err: Error) => {
      const cause = nodeError(err)
      if (!isRefusal(cause)) this.lastConnectionError = cause
    })
    this.listenOn(this.commands, 'ready', () => {
      this.seedFailure = undefined
      void this.recover()
    })
    this.listenOn(this.commands, 'close', () => { this.registered = false; this.updateUp() })
    // After every reading of the slot map: follow moved slots, open connections to new masters.
    this.listenOn(this.commands, 'refresh', () => { if (this.listener !== undefined && !this.closing) void this.rehome() })
  }

  /** The shards (master "host:port") whose subscriber connection is down: their topics answer 503. */
  get unavailableShards (): string[] {
    return [...this.shards.values()].filter(shard => !shard.live).map(shard => shard.key).sort()
  }

  /** Where the cluster is, for messages: the seeds as host:port, or the handed client. */
  private get where (): string {
    if (this.handedClient) return 'Redis Cluster (the client handed over as `redis`)'
    return `Redis Cluster at ${this.seedNodes.map(nodeKey).join(',')} (REDIS_CLUSTER_NODES)`
  }

  /** Where the cluster was looked for and why it was last out of reach, for the start-up log. */
  get unreachableReason (): string {
    const seedFailure = this.seedFailure === undefined ? '' : ` (${nodeKey(this.seedNodes[0])}: ${this.seedFailure})`
    return `${this.where}: ${this.lastConnectionError?.message ?? 'no answer yet'}${seedFailure}`
  }

  /**
   * Connects to the cluster and announces the node. As with one Redis, a cluster out of reach is an
   * outage (start resolves, `up` false) and a refusal (wrong password, ACL) a configuration error.
   */
  async start (listener: BrokerListener): Promise<void> {
    this.listener = listener
    const timeout = this.settings.connectTimeout ?? 5000
    // A handed client is usually connected already: its 'ready' came before our listener.
    if (this.commands.status === 'ready') void this.recover()
    const refusal = await this.firstContact(timeout)
    if (refusal !== undefined) {
      await this.close()
      throw new Error(`${this.where} refused this node: ${refusal.message}`)
    }
    // Up once the control channel is subscribed on some shard; wait, within the same time, for every
    // shard, so that the first subscriptions do not meet a shard still connecting.
    await this.until(() => this.isUp && [...this.shards.values()].every(shard => shard.live), timeout)
    if (!this.isUp) {
      this.wasUp = true
      if (!this.handedClient) await this.diagnose()
    }
    this.heartbeat = setInterval(() => this.beat(), this.heartbeatInterval)
    this.heartbeat.unref()
    this.controlLog.start()
    // Our own client rereads the slot map every SLOTS_REFRESH_MS (its slotsRefreshInterval), to notice
    // a failover or a migration nobody told us about; a handed one that does not, is made to.
    const interval = slotsRefreshIntervalOf(this.commands)
    if (this.handedClient && (interval === undefined || interval <= 0 || interval > SLOTS_REFRESH_MS)) {
      this.slotsTimer = setInterval(() => { if (this.commands.status === 'ready') this.commands.refreshSlotsCache() }, SLOTS_REFRESH_MS)
      this.slotsTimer.unref()
    }
  }

  override async close (): Promise<void> {
    clearInterval(this.slotsTimer)
    await super.close()
  }

  /**
   * Connects and waits for the first verdict: connected or out of reach (undefined: the connection
   * failed, or no answer within `timeoutMs`), or a refusal (the reply of a node that said no, such as
   * WRONGPASS: the Cluster client reports it as the cause of its "Failed to refresh slots cache").
   */
  private async firstContact (timeoutMs: number): Promise<Error | undefined> {
    return await new Promise(resolve => {
      const finish = (refusal?: Error): void => {
        clearTimeout(timer)
        this.commands.off('error', onError)
        resolve(refusal)
      }
      const onError = (err: Error): void => {
        const cause = nodeError(err)
        if (isRefusal(cause)) finish(cause)
      }
      const timer = setTimeout(() => finish(), timeoutMs)
      this.commands.on('error', onError)
      // A handed client is connected (or reconnecting) by its owner already: nothing to wait for here.
      if (this.commands.status === 'wait') this.commands.connect().then(() => finish(), () => finish())
      else finish()
    })
  }

  /**
   * Out of reach at start, the Cluster client can only say "Connection is closed.": its slot-refresh
   * connections drop their own errors, such as a TLS certificate that fails the check or a refused
   * connection. One plain connection to the first seed, with the same login and TLS, says which, for
   * the start-up warning (unreachableReason; the Cluster client's own errors go on replacing its
   * lastConnectionError, so this is kept apart).
   */
  private async diagnose (): Promise<void> {
    const client = createClient(nodeUrl(this.seedNodes[0]), this.connectionName('diagnose'), { ...this.login, retryStrategy: () => null })
    // The socket's own error (the certificate check, ECONNREFUSED) comes as an event; connect() then
    // rejects with only "Connection is closed.".
    let socketError: Error | undefined
    client.on('error', (err: Error) => { socketError ??= err })
    try {
      await client.connect()
    } catch (err) {
      this.seedFailure = (socketError ?? err as Error).message
    } finally {
      client.disconnect()
    }
  }

  // ---- subscriptions: one connection per shard ----

  /** Resolves once the topic's shard confirmed the SSUBSCRIBE; fails at once when that shard is down. */
  async subscribe (topic: string): Promise<void> {
    this.feed.topics.add(topic)
    const owner = this.ownerOf(topic)
    const shard = owner === undefined ? undefined : this.shards.get(owner)
    try {
      if (shard === undefined || !shard.live) throw this.shardDown(topic, owner)
      this.homes.set(topic, shard.key)
      await shard.client.ssubscribe(this.keys.channel(topic))
    } catch (err) {
      this.feed.forget(topic)
      this.homes.delete(topic)
      if (isMoved(err)) this.commands.refreshSlotsCache()
      throw toBrokerError(err)
    }
  }

  async unsubscribe (topic: string): Promise<void> {
    this.feed.forget(topic)
    const home = this.shards.get(this.homes.get(topic) ?? '')
    this.homes.delete(topic)
    if (home?.client.status !== 'ready') return
    try {
      await home.client.sunsubscribe(this.keys.channel(topic))
    } catch (err) {
      if (home.client.status === 'ready') throw toBrokerError(err)
    }
  }

  protected async sendOnChannel (channel: string, payload: string): Promise<unknown> {
    return await this.commands.spublish(channel, payload)
  }

  /** The master owning the topic's slot, as the Cluster client's slot map says. */
  private ownerOf (topic: string): string | undefined {
    return this.commands.slots[keySlot(this.keys.channel(topic))]?.[0]
  }

  private shardDown (topic: string, owner: string | undefined): BrokerUnavailableError {
    return new BrokerUnavailableError(`the Redis Cluster shard of topic ${topic} (${owner ?? 'no master'}) is unreachable`)
  }

  /** A subscriber connection per master of the slot map; shards that own nothing any more are closed. */
  private syncShards (): void {
    const masters = new Set(this.commands.slots.flatMap(owners => owners[0] === undefined ? [] : [owners[0]]))
    for (const key of masters) if (!this.shards.has(key)) this.openShard(key)
    for (const shard of this.shards.values()) {
      if (masters.has(shard.key)) continue
      this.shards.delete(shard.key)
      if (this.controlHome === shard) this.controlHome = undefined
      void quit(shard.client)
    }
    if (this.controlHome === undefined) void this.homeControl()
  }

  private openShard (key: string): void {
    // The Cluster client's options for its node connections: the login and TLS of the cluster (ours
    // from the seed list, or a handed client's), with our connection options on top.
    const client = new Redis({ ...this.commands.options.redisOptions, ...parseNodeKey(key), ...ownConnection(this.connectionName(`sub@${key}`)) })
    const shard: Shard = { key, client, live: false, losses: 0 }
    this.shards.set(key, shard)
    client.on('error', () => {})
    client.on('smessage', (channel: string, payload: string) => this.receive(channel, payload))
    client.on('message', (channel: string, payload: string) => this.receive(channel, payload))
    client.on('ready', () => { void this.resubscribe(shard) })
    client.on('close', () => this.shardLost(shard))
    // Redis unsubscribed us from a slot that moved away (migration): read the slot map again.
    client.on('moved', () => this.commands.refreshSlotsCache())
    client.connect().catch(() => {})
  }

  private shardLost (shard: Shard): void {
    shard.losses++
    shard.live = false
    // Down only when no other shard can take the control channel (homeControl says).
    if (this.controlHome === shard) {
      this.controlHome = undefined
      void this.homeControl()
    }
    // A master that went away may be failing over: learn the new owner of its slots soon.
    if (!this.closing) this.commands.refreshSlotsCache()
  }

  /**
   * The shard's connection (re)opened: SSUBSCRIBE its topics again, holding their live publications,
   * then fill each topic's gap from history. The shard counts as live once it is subscribed.
   */
  private async resubscribe (shard: Shard): Promise<void> {
    if (this.listener === undefined || this.closing || this.shards.get(shard.key) !== shard) return
    const losses = shard.losses
    const topics = [...this.homes].filter(([, home]) => home === shard.key).map(([topic]) => topic)
    this.feed.hold(topics)
    try {
      await Promise.all(topics.map(async topic => await shard.client.ssubscribe(this.keys.channel(topic))))
    } catch (err) {
      // A master still loading or a slot it no longer owns (MOVED: the slot map is stale, rehome()
      // moves the topic). Try again shortly; the topics stay held, so nothing is lost meanwhile.
      if (isMoved(err)) this.commands.refreshSlotsCache()
      setTimeout(() => { if (losses === shard.losses) void this.resubscribe(shard) }, RESUBSCRIBE_RETRY_MS).unref()
      return
    }
    if (losses !== shard.losses) return
    shard.live = true
    if (this.controlHome === undefined) await this.homeControl()
    this.updateUp()
    // Topics that moved here (rehome) while this ran were not in the list: take them now.
    const late = [...this.homes].filter(([topic, home]) => home === shard.key && !topics.includes(topic)).map(([topic]) => topic)
    if (late.length > 0) void this.take(shard, late)
    await this.fill(topics.filter(topic => this.homes.get(topic) === shard.key), () => losses === shard.losses)
  }

  /** SSUBSCRIBEs topics on a live shard and fills their gap; a refusal reconnects the shard (resubscribe). */
  private async take (shard: Shard, topics: string[]): Promise<void> {
    this.feed.hold(topics)
    const subscribed = await Promise.all(topics.map(async topic =>
      await shard.client.ssubscribe(this.keys.channel(topic)).then(() => true, () => false)))
    if (subscribed.includes(false)) shard.client.disconnect(true)
    else await this.fill(topics, () => shard.live)
  }

  /**
   * Fills the gaps of held topics; a history read that fails (the master not quite ready) is retried,
   * since the topics stay held until it succeeds. Gives up when `current` turns false: whoever made
   * it so (a new connection, a move) holds and fills them again.
   */
  private async fill (topics: readonly string[], current: () => boolean): Promise<void> {
    while (!this.closing && current()) {
      try {
        await this.fillGaps(topics)
        return
      } catch {
        await new Promise(resolve => setTimeout(resolve, RESUBSCRIBE_RETRY_MS).unref())
      }
    }
  }

  /** After a slot map change: topics whose slot has another master now move to its connection. */
  private async rehome (): Promise<void> {
    this.syncShards()
    const moved = new Map<string, string[]>()
    for (const [topic, home] of this.homes) {
      const owner = this.ownerOf(topic)
      if (owner === undefined || owner === home) continue
      this.homes.set(topic, owner)
      const old = this.shards.get(home)
      if (old?.client.status === 'ready') old.client.sunsubscribe(this.keys.channel(topic)).catch(() => {})
      moved.set(owner, [...(moved.get(owner) ?? []), topic])
    }
    // A live shard takes its new topics now; one still connecting takes them in resubscribe().
    await Promise.all([...moved].map(async ([owner, topics]) => {
      const shard = this.shards.get(owner)
      if (shard?.live === true) await this.take(shard, topics)
    }))
  }

  /** SUBSCRIBEs the control channel on a live shard (a plain PUBLISH reaches every node). */
  private homeControl (): Promise<void> {
    this.homing ??= this.findControlHome().finally(() => { this.homing = undefined })
    return this.homing
  }

  private async findControlHome (): Promise<void> {
    for (const shard of this.shards.values()) {
      if (this.controlHome !== undefined) break
      if (!shard.live || shard.client.status !== 'ready') continue
      try {
        await shard.client.subscribe(this.keys.control)
      } catch {
        continue
      }
      if (shard.client.status !== 'ready') continue
      this.controlHome = shard
      // Control messages sent while no shard held the control subscription: from the control log.
      void this.controlLog.reconcile()
      break
    }
    this.updateUp()
  }

  // ---- outages ----

  /** The cluster client is (again) ready: follow the slot map, announce, write presence back. */
  private async recover (): Promise<void> {
    if (this.listener === undefined || this.closing) return
    this.syncShards()
    try {
      await this.announce()
      await this.restorePresence()
      this.registered = true
    } catch {
      // The next heartbeat tries again.
    }
    this.updateUp()
  }

  /** Up while the cluster answers, this node is registered and the control channel is subscribed. */
  private updateUp (): void {
    const up = !this.closing && this.commands.status === 'ready' && this.registered && (this.controlHome !== undefined || this.homing !== undefined)
    if (up === this.isUp) return
    this.isUp = up
    if (up && !this.wasUp) {
      this.wasUp = true
      return
    }
    this.listener?.status(up)
  }

  private beat (): void {
    if (this.closing) return
    if (this.commands.status === 'ready') {
      this.announce().then(async registered => {
        if (!registered || !this.registered) await this.restorePresence()
        this.registered = true
        this.updateUp()
      }).catch(() => {})
    }
    for (const shard of this.shards.values()) probe(shard.client, () => shard.client.ping(), () => this.closing, this.probing)
  }

  /** The cluster out of reach, or the shard holding `topic`: commands fail at once. */
  protected unreachable (topic: string | undefined): BrokerUnavailableError | undefined {
    if (this.commands.status !== 'ready') return new BrokerUnavailableError('the Redis Cluster is unreachable')
    if (topic === undefined) return undefined
    const owner = this.ownerOf(topic)
    return owner !== undefined && this.shards.get(owner)?.client.status === 'ready' ? undefined : this.shardDown(topic, owner)
  }

  protected subscribers (): Redis[] {
    return [...this.shards.values()].map(shard => shard.client)
  }

  // ---- plumbing ----

  /** CLIENT LIST shows which node and role a connection belongs to (names cannot hold spaces). */
  private connectionName (role: string): string {
    return `${this.settings.prefix}${role}:${this.settings.nodeId}`.replace(/\s/g, '_')
  }

  private async until (condition: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!condition() && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** The node's reply behind a Cluster client's "Failed to refresh slots cache" (its lastNodeError). */
function nodeError (err: Error): Error {
  const cause = (err as { lastNodeError?: unknown }).lastNodeError
  return cause instanceof Error ? cause : err
}

function isMoved (err: unknown): boolean {
  return err instanceof Error && /^(MOVED|ASK)\b/.test(err.message)
}
