// What the workers of one machine (WORKERS > 1, without Redis) and their primary say to each other
// over node's IPC channel: brokers/ipc.ts (each worker's broker) asks, brokers/ipc-host.ts (the
// primary, owner of the one MemoryBroker) answers and pushes publications. Both sides gather what
// they send within one event-loop turn into one IPC message (a batch), since each message costs a
// serialization and a write on the pipe whatever its size: a burst of HTTP publishes then crosses in
// a few messages, not one per publish and one per answer.
//
// The entries are arrays, not objects with named fields: they are short-lived and the hot ones
// (publish, publication) are mostly strings, cheap to serialize either way.

/** The key of a batch: any other message on the channel (prom-client's metrics requests) is not ours. */
export const BATCH_KEY = 'rt'

/** A batch: `{ rt: entries }`. */
export interface Batch { [BATCH_KEY]: unknown[] }

/**
 * Set by the primary in its workers' environment: this process is a worker whose primary holds the
 * shared in-memory broker. A process that merely runs under node:cluster (a host's own) is not one.
 */
export const WORKER_ENV = 'FASTIFY_REALTIME_WORKER'

/** Whether this process is a worker of fastify-realtime's primary (src/workers/primary.ts). */
export function isWorkerOfPrimary (): boolean {
  return process.env[WORKER_ENV] !== undefined && typeof process.send === 'function'
}

/** The part of a ChildProcess (a cluster worker's `worker.process`) or of `process` in a child that the two sides use. */
export interface IpcEndpoint {
  /** With a callback, a send on a closed channel reports to it instead of emitting 'error'. */
  send: (message: Batch, callback: (error: Error | null) => void) => unknown
  on: (event: 'message', listener: (message: unknown) => void) => unknown
  off: (event: 'message', listener: (message: unknown) => void) => unknown
}

/**
 * Worker -> primary: `[id, op, ...args]`. The primary answers each with `[id, result]` or
 * `[id, null, errorMessage]`; id 0 asks for no answer.
 */
export const Op = {
  hello: 'hello',
  bye: 'bye',
  publish: 'pub',
  event: 'ev',
  subscribe: 'sub',
  unsubscribe: 'unsub',
  history: 'hist',
  control: 'ctl',
  revoke: 'rev',
  isRevoked: 'isrev',
  addPresence: 'padd',
  removePresence: 'prem',
  presence: 'pres',
  nodes: 'nodes',
  /** The answer to a Push.describe: `[0, 'desc', gatherId, NodeInfo]`. */
  described: 'desc'
} as const

/**
 * Primary -> worker, besides answers (which start with a number):
 * - `['m', topic, epoch, offset, ts, frame]` a publication on a topic the worker subscribed to;
 * - `['e', topic, frame]` an event (join/leave) on such a topic;
 * - `['c', ControlMessage]` a control message, to every worker;
 * - `['d', gatherId]` asks for the worker's figures (GET /api/info).
 */
export const Push = {
  publication: 'm',
  event: 'e',
  control: 'c',
  describe: 'd'
} as const

/** The entries of `message` if it is a batch of ours, else undefined. */
export function entriesOf (message: unknown): unknown[][] | undefined {
  if (typeof message !== 'object' || message === null) return undefined
  const entries = (message as Partial<Batch>)[BATCH_KEY]
  return Array.isArray(entries) ? entries as unknown[][] : undefined
}

/**
 * Entries queued for one endpoint and sent together once the current event-loop turn is over
 * (setImmediate runs after the I/O callbacks of this turn: every request of one poll goes in one batch).
 */
export class Outbox {
  private entries: unknown[] = []
  private scheduled = false

  constructor (private readonly send: (batch: Batch) => void) {}

  push (entry: unknown): void {
    this.entries.push(entry)
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(this.flush)
  }

  readonly flush = (): void => {
    this.scheduled = false
    if (this.entries.length === 0) return
    const entries = this.entries
    this.entries = []
    this.send({ [BATCH_KEY]: entries })
  }
}

/** A send's callback: a channel that closed meanwhile is the peer's exit, reported by its own event. */
export function ignoreClosed (): void {}
