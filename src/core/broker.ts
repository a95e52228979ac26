// The broker seam: what a node needs from the service that connects it to the other nodes, as four
// small interfaces (docs/architecture.md). Only `Broker` is required; the other three are parts a
// broker provides when it can, and says so through the matching property (`presenceStore`,
// `controlBus`, `nodeRegistry`). brokers/memory.ts serves one process, brokers/redis.ts many; each is
// one class implementing all four.
import type { RedisClientLike } from './brokers/redis-client-like.js'
import type { Publication, PublicationInput, StreamPosition } from './protocol.js'

// ---- Broker: publish/subscribe and history ----

/**
 * Makes a publication reach every node: assigns the topic's next offset (the same on every node),
 * keeps the topic's history, and hands publications on subscribed topics back to each node's hub.
 */
export interface Broker {
  /** Connects and starts delivering to `listener`. */
  start: (listener: BrokerListener) => Promise<void>
  /** Assigns the next offset, stores the publication in history and delivers it to every node. */
  publish: (input: PublicationInput, options?: BrokerPublishOptions) => Promise<PublishOutcome>
  /** Delivers an offset-less frame (join/leave) to the topic's subscribers on every node. */
  publishEvent: (topic: string, frame: string) => Promise<void>
  /** This node starts receiving the topic's publications; resolves once that is in effect. */
  subscribe: (topic: string) => Promise<void>
  unsubscribe: (topic: string) => Promise<void>
  /**
   * The topic's position and, when `limit` allows, its history. A read creates nothing: a topic with
   * no stream answers EMPTY_EPOCH (brokers/history.ts) at offset 0.
   */
  history: (topic: string, query?: HistoryQuery) => Promise<HistoryResult>
  /** Approximate bytes of history this broker holds in this process (`realtime_history_bytes`); undefined: none. */
  readonly heldBytes?: number
  /** Is the broker reachable right now? */
  readonly up: boolean
  close: () => Promise<void>
  /** Shared presence entries; absent: PRESENCE cannot be turned on (the node refuses to start). */
  readonly presenceStore?: PresenceStore
  /** Revocations and disconnects on every node; absent: revoke and disconnect answer `not_found`. */
  readonly controlBus?: ControlBus
  /** The live nodes; absent: GET /api/info lists this node alone. */
  readonly nodeRegistry?: NodeRegistry
  /** Why the broker is out of reach (its connection's last error), for the start-up warning; absent: not known. */
  readonly unreachableReason?: string
  /**
   * The parts that are down while the rest serves (a Redis Cluster's shards, `host:port`): readiness
   * names them and `realtime_broker_unavailable_shards` counts them. Absent or empty: none.
   */
  readonly unavailableShards?: readonly string[]
  /**
   * A Redis command connection the plugins may share: the HTTP rate limit keeps its counters on it and
   * the MQTT bridge its partitions' leases. Absent: they keep their state in this process. An ioredis
   * client (Redis or Cluster), typed by its shape so that the package's declarations need no ioredis.
   */
  readonly sharedRedis?: RedisClientLike
  /**
   * Gives the command connection the broker opened to the caller, who closes it after close() (the
   * plugin hands it to @fastify/redis); undefined when there is none that is the broker's to give.
   */
  releaseCommands?: () => RedisClientLike | undefined
}

/** What a broker calls back on the node that started it. */
export interface BrokerListener {
  /** A publication on a topic this node subscribed to; per topic, in offset order. */
  publication: (publication: Publication) => void
  /** A frame without offset (join/leave) for a topic this node subscribed to: fan-out only. */
  event: (topic: string, frame: string) => void
  /** The broker lost (false) or regained (true) its connection. */
  status: (up: boolean) => void
  /**
   * A control message sent by any node, this one included (brokers with a control bus). `sentAt` (ms
   * since the epoch) is set when the message comes late (a Redis broker heals what pub/sub lost from
   * its control log): it then concerns only the connections begun before that time.
   */
  control: (message: ControlMessage, sentAt?: number) => void
  /** This node's current figures, announced to the registry (brokers with a node registry). */
  describe: () => NodeInfo
}

export interface HistoryQuery {
  /** Only publications after this position; ignored when its epoch is not the current one. */
  since?: StreamPosition
  /** At most this many publications (the newest ones when `since` is absent, else the oldest after it). */
  limit?: number
}

/** The topic's current top position and the publications the query asked for, in offset order. */
export interface HistoryResult extends StreamPosition {
  publications: Publication[]
}

export interface BrokerPublishOptions {
  /**
   * Publishes at most once per key: a repeated key within `idempotencyTtlMs` resolves with the first
   * publication's position and publishes nothing. Checked atomically with the publish, on every node.
   */
  idempotencyKey?: string
  idempotencyTtlMs?: number
}

/** Where a publish landed; `repeated` when an idempotency key answered with an earlier publication. */
export interface PublishOutcome extends StreamPosition {
  repeated: boolean
}

// ---- PresenceStore: who is subscribed where, across nodes ----

/** One connection subscribed to a topic, as presence reports it. */
export interface PresenceEntry {
  connectionId: string
  user: string | null
  /** The node holding the connection; brokers use it to drop the entries of dead nodes. */
  node: string
}

export interface PresenceStore {
  addPresence: (topic: string, entry: PresenceEntry) => Promise<void>
  removePresence: (topic: string, connectionId: string) => Promise<void>
  /** Every connection subscribed to the topic on a live node. */
  presence: (topic: string) => Promise<PresenceEntry[]>
}

// ---- ControlBus: messages that act on connections wherever they are ----

/** Messages between nodes that are not publications; each node applies them to its own connections. */
export type ControlMessage =
  | { type: 'disconnect', user: string }
  | { type: 'revoke', jti: string }

export interface ControlBus {
  /** Delivers `message` to every node's listener (`BrokerListener.control`), this one's included. */
  sendControl: (message: ControlMessage) => Promise<void>
  /** Refuses the token `jti` on every node until `untilMs` (ms since epoch). */
  revoke: (jti: string, untilMs: number) => Promise<void>
  isRevoked: (jti: string) => Promise<boolean>
}

// ---- NodeRegistry: which nodes serve ----

/**
 * A node as the registry lists it (GET /api/info). The optional fields came later (the admin page):
 * a broker that passes an older node's figures along, or builds its own, may leave them out.
 */
export interface NodeInfo {
  id: string
  connections: number
  subscriptions: number
  topics: number
  startedAt: number
  /** Resident set size of the node's process, bytes. */
  memory?: number
  /** Frames delivered to subscribers since the node started: two readings give deliveries per second. */
  deliveries?: number
  /** Whether the node's broker was reachable. */
  brokerUp?: boolean
  /** When these figures were taken, ms since the epoch: the registry hands them on later. */
  sampledAt?: number
}

export interface NodeRegistry {
  /** The live nodes, this one included (with the figures of `BrokerListener.describe`). */
  nodes: () => Promise<NodeInfo[]>
}

/** Thrown by a broker that cannot reach its backend: callers answer 503 / `unavailable`. */
export class BrokerUnavailableError extends Error {
  readonly code = 'BROKER_UNAVAILABLE'
}
