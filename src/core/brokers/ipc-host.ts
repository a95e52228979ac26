// The primary's side of the workers' shared in-memory broker (WORKERS > 1 without Redis): one
// MemoryBroker, so that offsets, history, presence, idempotency keys and revocations are exact across
// workers as on one node, and the workers' requests (brokers/ipc.ts) answered from it. A publication
// goes to the workers that subscribed its topic, not to all of them; control messages go to all.
// Works on any endpoint with send and on('message'): cluster workers, and a forked test process.
import type { BrokerListener, ControlMessage, NodeInfo, PresenceEntry } from '../broker.js'
import type { Publication } from '../protocol.js'
import { entriesOf, ignoreClosed, Op, Outbox, Push, type IpcEndpoint } from './ipc-protocol.js'
import { MemoryBroker, type MemoryBrokerOptions } from './memory.js'

/** How long GET /api/info waits for a worker's figures: a worker that is stuck or gone is left out. */
const DESCRIBE_TIMEOUT_MS = 1000

/** One worker as the host knows it. */
interface Worker {
  endpoint: IpcEndpoint
  outbox: Outbox
  /** Said hello: its broker has started, so it answers describe requests. */
  started: boolean
  topics: Set<string>
  /** topic -> its connections' presence entries added through this worker, removed when it goes. */
  presence: Map<string, Set<string>>
  listener: (message: unknown) => void
}

/** A GET /api/info in progress: the figures of the workers asked, until all answered. */
interface Gathering {
  waiting: number
  nodes: NodeInfo[]
  done: () => void
}

export class IpcBrokerHost {
  private readonly memory: MemoryBroker
  private readonly workers = new Set<Worker>()
  /** topic -> the workers subscribed to it. */
  private readonly subscribers = new Map<string, Set<Worker>>()
  private readonly gatherings = new Map<number, Gathering>()
  private nextGathering = 1

  constructor (options: MemoryBrokerOptions) {
    this.memory = new MemoryBroker(options)
  }

  async start (): Promise<void> {
    const listener: BrokerListener = {
      publication: publication => this.fanOut(publication),
      event: (topic, frame) => { for (const worker of this.subscribers.get(topic) ?? []) worker.outbox.push([Push.event, topic, frame]) },
      control: message => this.broadcastControl(message),
      status: () => {},
      // The workers describe themselves (Op.nodes): the host never answers for one.
      describe: () => ({ id: 'primary', connections: 0, subscriptions: 0, topics: 0, startedAt: 0 })
    }
    await this.memory.start(listener)
  }

  /** Serves `endpoint` (a newly forked worker); returns what forgets it (call when it exits). */
  attach (endpoint: IpcEndpoint): () => void {
    const worker: Worker = {
      endpoint,
      outbox: new Outbox(batch => { endpoint.send(batch, ignoreClosed) }),
      started: false,
      topics: new Set(),
      presence: new Map(),
      listener: message => this.receive(worker, message)
    }
    this.workers.add(worker)
    endpoint.on('message', worker.listener)
    return () => { void this.detach(worker) }
  }

  /** Bytes of history held (the primary's own figure; workers report 0). */
  get heldBytes (): number {
    return this.memory.heldBytes
  }

  async close (): Promise<void> {
    for (const worker of this.workers) await this.detach(worker)
    await this.memory.close()
  }

  private receive (worker: Worker, message: unknown): void {
    const entries = entriesOf(message)
    if (entries === undefined) return
    // In order, without waiting in between: the memory broker acts synchronously, so effects (and a
    // publication's fan-out, pushed before its answer) keep the order the worker sent them in.
    for (const entry of entries) {
      const id = entry[0] as number
      this.handle(worker, entry).then(
        result => { if (id !== 0) worker.outbox.push([id, result === undefined ? null : result]) },
        (error: Error) => { if (id !== 0) worker.outbox.push([id, null, error.message]) }
      )
    }
  }

  private async handle (worker: Worker, entry: unknown[]): Promise<unknown> {
    const memory = this.memory
    switch (entry[1]) {
      case Op.publish: {
        const [topic, dataJson, from, idempotency] = entry.slice(2) as [string, string, string | null, [string, number | null] | null]
        return await memory.publish({ topic, data: undefined, dataJson, from: from ?? undefined },
          idempotency === null ? {} : { idempotencyKey: idempotency[0], idempotencyTtlMs: idempotency[1] ?? undefined })
      }
      case Op.event: return await memory.publishEvent(entry[2] as string, entry[3] as string)
      case Op.subscribe: return await this.subscribe(worker, entry[2] as string)
      case Op.unsubscribe: return await this.unsubscribe(worker, entry[2] as string)
      case Op.history: return await memory.history(entry[2] as string, entry[3] as object)
      case Op.control: return await memory.sendControl(entry[2] as ControlMessage)
      case Op.revoke: return await memory.revoke(entry[2] as string, entry[3] as number)
      case Op.isRevoked: return await memory.isRevoked(entry[2] as string)
      case Op.addPresence: return await this.addPresence(worker, entry[2] as string, entry[3] as PresenceEntry)
      case Op.removePresence: return await this.removePresence(worker, entry[2] as string, entry[3] as string)
      case Op.presence: return await memory.presence(entry[2] as string)
      case Op.nodes: return await this.nodes()
      case Op.described: return this.described(entry[2] as number, entry[3] as NodeInfo)
      case Op.hello: worker.started = true; return
      case Op.bye: return await this.forget(worker)
      default: throw new Error(`unknown IPC broker operation ${String(entry[1])}`)
    }
  }

  private fanOut (publication: Publication): void {
    const workers = this.subscribers.get(publication.topic)
    if (workers === undefined) return
    const entry = [Push.publication, publication.topic, publication.epoch, publication.offset, publication.ts, publication.frame]
    for (const worker of workers) worker.outbox.push(entry)
  }

  private broadcastControl (message: ControlMessage): void {
    for (const worker of this.workers) if (worker.started) worker.outbox.push([Push.control, message])
  }

  private async subscribe (worker: Worker, topic: string): Promise<void> {
    if (worker.topics.has(topic)) return
    worker.topics.add(topic)
    let workers = this.subscribers.get(topic)
    if (workers === undefined) {
      this.subscribers.set(topic, workers = new Set())
      await this.memory.subscribe(topic)
    }
    workers.add(worker)
  }

  private async unsubscribe (worker: Worker, topic: string): Promise<void> {
    if (!worker.topics.delete(topic)) return
    const workers = this.subscribers.get(topic)
    workers?.delete(worker)
    if (workers?.size === 0) {
      this.subscribers.delete(topic)
      await this.memory.unsubscribe(topic)
    }
  }

  private async addPresence (worker: Worker, topic: string, entry: PresenceEntry): Promise<void> {
    let ids = worker.presence.get(topic)
    if (ids === undefined) worker.presence.set(topic, ids = new Set())
    ids.add(entry.connectionId)
    await this.memory.addPresence(topic, entry)
  }

  private async removePresence (worker: Worker, topic: string, connectionId: string): Promise<void> {
    const ids = worker.presence.get(topic)
    ids?.delete(connectionId)
    if (ids?.size === 0) worker.presence.delete(topic)
    await this.memory.removePresence(topic, connectionId)
  }

  /** Every started worker's figures, by node id; those that do not answer in time are left out. */
  private async nodes (): Promise<NodeInfo[]> {
    const asked = [...this.workers].filter(worker => worker.started)
    const id = this.nextGathering++
    const gathering: Gathering = { waiting: asked.length, nodes: [], done: () => {} }
    await new Promise<void>(resolve => {
      const timer = setTimeout(resolve, DESCRIBE_TIMEOUT_MS)
      gathering.done = () => { clearTimeout(timer); resolve() }
      this.gatherings.set(id, gathering)
      for (const worker of asked) worker.outbox.push([Push.describe, id])
      if (asked.length === 0) gathering.done()
    })
    this.gatherings.delete(id)
    return gathering.nodes.sort((a, b) => a.id.localeCompare(b.id))
  }

  private described (id: number, info: NodeInfo): void {
    const gathering = this.gatherings.get(id)
    if (gathering === undefined) return
    gathering.nodes.push(info)
    if (--gathering.waiting === 0) gathering.done()
  }

  /** A worker that left (bye) or died: its subscriptions and its connections' presence go with it. */
  private async forget (worker: Worker): Promise<void> {
    worker.started = false
    for (const topic of [...worker.topics]) await this.unsubscribe(worker, topic)
    for (const [topic, ids] of [...worker.presence]) {
      for (const connectionId of [...ids]) await this.removePresence(worker, topic, connectionId)
    }
  }

  private async detach (worker: Worker): Promise<void> {
    if (!this.workers.delete(worker)) return
    worker.endpoint.off('message', worker.listener)
    await this.forget(worker)
  }
}
