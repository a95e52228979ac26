// The shapes of the server's frames and of what the client's API returns (docs/protocol.md §2). The
// ones the server writes too come from its own definitions (src/core/wire.ts).
import type { StreamPosition } from '../src/core/wire.js'

export type { StreamPosition, Welcome } from '../src/core/wire.js'

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
