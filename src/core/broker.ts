// The Broker is what makes a publication reach every node: it assigns the topic's next offset (the
// same on every node), keeps the topic's history, and hands publications on subscribed topics back to
// each node's hub. brokers/memory.ts serves one process; brokers/redis.ts many.
import type { Publication, PublicationInput, StreamPosition } from './protocol.js'

/** Messages between nodes that are not publications: they act on connections wherever they are. */
export type ControlMessage =
  | { type: 'disconnect', user: string }
  | { type: 'revoke', jti: string }

/** One connection subscribed to a topic, as presence reports it. */
export interface PresenceEntry {
  connectionId: string
  user: string | null
  /** The node holding the connection; brokers use it to drop the entries of dead nodes. */
  node: string
}

/** A node as the registry lists it (GET /api/info). */
export interface NodeInfo {
  id: string
  connections: number
  subscriptions: number
  startedAt: number
}

export interface BrokerListener {
  /** A publication on a topic this node subscribed to; per topic, in offset order. */
  publication: (publication: Publication) => void
  /** A frame without offset (join/leave) for a topic this node subscribed to: fan-out only. */
  event: (topic: string, frame: string) => void
  /** This node's current figures, announced to the node registry. */
  describe: () => NodeInfo
  /** A control message sent by any node, this one included. */
  control: (message: ControlMessage) => void
  /** The broker lost (false) or regained (true) its connection. */
  status: (up: boolean) => void
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

export interface PublishOptions {
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

export interface Broker {
  /** Connects and starts delivering to `listener`. */
  start: (listener: BrokerListener) => Promise<void>
  /** Assigns the next offset, stores the publication in history and delivers it to every node. */
  publish: (input: PublicationInput, options?: PublishOptions) => Promise<PublishOutcome>
  /** Delivers an offset-less frame (join/leave) to the topic's subscribers on every node. */
  publishEvent: (topic: string, frame: string) => Promise<void>
  /** This node starts receiving the topic's publications; resolves once that is in effect. */
  subscribe: (topic: string) => Promise<void>
  unsubscribe: (topic: string) => Promise<void>
  /** The topic's position (a fresh epoch if it has none) and, when `limit` allows, its history. */
  history: (topic: string, query?: HistoryQuery) => Promise<HistoryResult>
  sendControl: (message: ControlMessage) => Promise<void>
  /** Refuses the token `jti` on every node until `untilMs` (ms since epoch). */
  revoke: (jti: string, untilMs: number) => Promise<void>
  isRevoked: (jti: string) => Promise<boolean>
  addPresence: (topic: string, entry: PresenceEntry) => Promise<void>
  removePresence: (topic: string, connectionId: string) => Promise<void>
  /** Every connection subscribed to the topic on a live node. */
  presence: (topic: string) => Promise<PresenceEntry[]>
  /** The live nodes (this one included). */
  nodes: () => Promise<NodeInfo[]>
  /** Is the broker reachable right now? */
  readonly up: boolean
  close: () => Promise<void>
}

/** Thrown by a broker that cannot reach its backend: callers answer 503 / `unavailable`. */
export class BrokerUnavailableError extends Error {
  readonly code = 'BROKER_UNAVAILABLE'
}
