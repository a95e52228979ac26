// Every Redis key and channel the Redis broker uses, in one place, all under the configured prefix
// (REDIS_PREFIX) so that several deployments and test runs can share one Redis.
//
// Per-topic names carry the topic as a hash tag, `{topic}`, so that a topic's meta, stream, presence,
// idempotency keys and channel land on the same slot of a Redis Cluster (the publish script touches
// them together). Topic names cannot contain braces, so the tag is always exactly the topic.
// The node registry (node set, heartbeat keys, per-node presence indexes) shares one hash tag,
// `{registry}`, so that its scripts touch one slot too (docs/scaling.md, Redis Cluster).

export class RedisKeys {
  /** Pub/sub channel of control messages (disconnect, revoke) to every node. */
  readonly control: string
  /**
   * Stream of the control messages of the last hour, the control log: what a node whose subscription
   * missed one reads to heal (redis-control-log.ts). One key, so one slot on a Cluster.
   */
  readonly controlLog: string
  /** Set of the ids of the nodes that announced themselves (dead ones are swept out). */
  readonly nodes: string
  /** `node` + id: one node's heartbeat key, its NodeInfo as JSON, expiring unless refreshed. */
  readonly node: string
  /** `nodePresence` + id: set of `topic\nconnectionId`, the presence entries a node holds. */
  readonly nodePresence: string
  /** A topic's presence hash is `presenceHead + topic + presenceTail` (the scripts build it too). */
  readonly presenceHead: string
  readonly presenceTail = '}:presence'

  constructor (readonly prefix: string) {
    this.control = `${prefix}control`
    this.controlLog = `${prefix}control-log`
    this.nodes = `${prefix}{registry}:nodes`
    this.node = `${prefix}{registry}:node:`
    this.nodePresence = `${prefix}{registry}:node-presence:`
    this.presenceHead = `${prefix}{`
  }

  /** Hash {e: epoch, o: top offset}: the topic's stream position; expires HISTORY_TTL after the last publish. */
  meta (topic: string): string {
    return `${this.prefix}{${topic}}:meta`
  }

  /** Stream of the last HISTORY_SIZE publications; entry id `<offset>-0`, fields t (ts) and f (frame). */
  stream (topic: string): string {
    return `${this.prefix}{${topic}}:stream`
  }

  /** Hash connectionId -> PresenceEntry as JSON. */
  presence (topic: string): string {
    return this.presenceHead + topic + this.presenceTail
  }

  /** Pub/sub channel of the topic's publications and join/leave events. */
  channel (topic: string): string {
    return `${this.prefix}{${topic}}:pub`
  }

  /** The topic of a channel made by `channel()`, or undefined for any other channel. */
  topicOf (channel: string): string | undefined {
    const head = this.prefix.length + 1
    if (!channel.startsWith(this.prefix) || channel[this.prefix.length] !== '{' || !channel.endsWith('}:pub')) return undefined
    return channel.slice(head, -5)
  }

  /**
   * String holding the first result of an idempotent publish on `topic` ("epoch offset"). In the
   * topic's slot, so the publish script can check it atomically on a Cluster: a key is per topic.
   */
  idempotency (topic: string, key: string): string {
    return `${this.prefix}{${topic}}:idempotency:${key}`
  }

  /** Exists while the token `jti` is revoked. */
  revoked (jti: string): string {
    return `${this.prefix}revoked:${jti}`
  }
}
