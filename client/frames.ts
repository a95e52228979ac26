// The shapes of the server's frames and of what the client's API returns (docs/protocol.md §2).

export interface StreamPosition {
  epoch: string
  offset: number
}

export interface Welcome {
  connectionId: string
  user: string | null
  node: string
  /** ms between the server's heartbeats. */
  heartbeat: number
  /** When the connection's token expires (ms since the epoch), or null. */
  expiresAt: number | null
}

export interface Message<Data = unknown> extends StreamPosition {
  topic: string
  data: Data
  /** When it was published, ms since the epoch. */
  ts: number
  /** The publishing user, when a client published. */
  from?: string
}

export interface PresenceEvent {
  topic: string
  user: string | null
  connectionId: string
}

export interface PublishResult extends StreamPosition {
  topic: string
}

export interface HistoryResult<Data = unknown> extends StreamPosition {
  /** Oldest first. */
  publications: Array<Message<Data>>
}

export interface PresenceResult {
  connections: number
  users: Array<{ user: string, connections: number }>
}

/** Any frame from the server, as parsed: the fields of every type, each optional. */
export type ServerFrame = Record<string, any> & { type?: string }
