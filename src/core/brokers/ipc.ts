// The broker of a worker (WORKERS > 1 without Redis): every call goes over the IPC channel to the
// primary, whose one MemoryBroker (brokers/ipc-host.ts) assigns offsets, keeps history, presence,
// idempotency keys and revocations for all workers, so they are exact as on one node. The primary
// pushes back the publications and events of the topics this worker subscribed to, control messages
// (to every worker) and requests for this worker's figures (GET /api/info lists every worker).
// Like the memory broker it is every part of the broker seam at once.
import type {
  Broker, BrokerListener, BrokerPublishOptions, ControlBus, ControlMessage, HistoryQuery, HistoryResult, NodeInfo,
  NodeRegistry, PresenceEntry, PresenceStore, PublishOutcome
} from '../broker.js'
import { BrokerUnavailableError } from '../broker.js'
import type { PublicationInput } from '../protocol.js'
import { entriesOf, ignoreClosed, Op, Outbox, Push, type IpcEndpoint } from './ipc-protocol.js'

interface Pending {
  resolve: (value: unknown) => void
  reject: (error: Error) => void
}

export class IpcBroker implements Broker, PresenceStore, ControlBus, NodeRegistry {
  readonly presenceStore: PresenceStore = this
  readonly controlBus: ControlBus = this
  readonly nodeRegistry: NodeRegistry = this
  private listener?: BrokerListener
  private readonly outbox: Outbox
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private connected = true

  /** `channel`: the primary, as this process sees it (`process` in a cluster worker). */
  constructor (private readonly channel: IpcEndpoint & { once?: (event: 'disconnect', listener: () => void) => unknown }) {
    this.outbox = new Outbox(batch => { if (this.connected) this.channel.send(batch, ignoreClosed) })
  }

  /** Up while the channel to the primary is open: a worker whose primary is gone exits anyway. */
  get up (): boolean {
    return this.connected
  }

  async start (listener: BrokerListener): Promise<void> {
    this.listener = listener
    this.channel.on('message', this.receive)
    this.channel.once?.('disconnect', this.lost)
    await this.request(Op.hello)
  }

  async close (): Promise<void> {
    // The primary forgets this worker's subscriptions and presence entries; the channel stays the
    // process's (a cluster worker's own exit closes it).
    if (this.connected) await this.request(Op.bye).catch(() => {})
    this.channel.off('message', this.receive)
    this.listener = undefined
  }

  // ---- Broker ----

  async publish (input: PublicationInput, options: BrokerPublishOptions = {}): Promise<PublishOutcome> {
    // Serialized here, as the memory broker would: only strings cross the channel.
    const dataJson = input.dataJson ?? JSON.stringify(input.data)
    const idempotency = options.idempotencyKey === undefined ? null : [options.idempotencyKey, options.idempotencyTtlMs ?? null]
    return await this.request(Op.publish, input.topic, dataJson, input.from ?? null, idempotency) as PublishOutcome
  }

  async publishEvent (topic: string, frame: string): Promise<void> {
    await this.request(Op.event, topic, frame)
  }

  async subscribe (topic: string): Promise<void> {
    await this.request(Op.subscribe, topic)
  }

  async unsubscribe (topic: string): Promise<void> {
    await this.request(Op.unsubscribe, topic)
  }

  async history (topic: string, query: HistoryQuery = {}): Promise<HistoryResult> {
    return await this.request(Op.history, topic, query) as HistoryResult
  }

  // ---- ControlBus ----

  async sendControl (message: ControlMessage): Promise<void> {
    await this.request(Op.control, message)
  }

  async revoke (jti: string, untilMs: number): Promise<void> {
    await this.request(Op.revoke, jti, untilMs)
  }

  async isRevoked (jti: string): Promise<boolean> {
    return await this.request(Op.isRevoked, jti) as boolean
  }

  // ---- PresenceStore ----

  async addPresence (topic: string, entry: PresenceEntry): Promise<void> {
    await this.request(Op.addPresence, topic, entry)
  }

  async removePresence (topic: string, connectionId: string): Promise<void> {
    await this.request(Op.removePresence, topic, connectionId)
  }

  async presence (topic: string): Promise<PresenceEntry[]> {
    return await this.request(Op.presence, topic) as PresenceEntry[]
  }

  // ---- NodeRegistry: every worker that answers the primary ----

  async nodes (): Promise<NodeInfo[]> {
    return await this.request(Op.nodes) as NodeInfo[]
  }

  // ---- the channel ----

  private async request (op: string, ...args: unknown[]): Promise<unknown> {
    if (!this.connected) throw new BrokerUnavailableError('the primary process is gone')
    const id = this.nextId++
    return await new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.outbox.push([id, op, ...args])
    })
  }

  private readonly receive = (message: unknown): void => {
    const entries = entriesOf(message)
    if (entries === undefined) return
    for (const entry of entries) {
      const head = entry[0]
      if (typeof head === 'number') this.settle(head, entry[1], entry[2] as string | undefined)
      else this.pushed(entry)
    }
  }

  private settle (id: number, result: unknown, error: string | null | undefined): void {
    const pending = this.pending.get(id)
    if (pending === undefined) return
    this.pending.delete(id)
    if (typeof error === 'string') pending.reject(new Error(error))
    else pending.resolve(result)
  }

  private pushed (entry: unknown[]): void {
    const listener = this.listener
    if (listener === undefined) return
    switch (entry[0]) {
      case Push.publication:
        listener.publication({ topic: entry[1] as string, epoch: entry[2] as string, offset: entry[3] as number, ts: entry[4] as number, frame: entry[5] as string })
        break
      case Push.event:
        listener.event(entry[1] as string, entry[2] as string)
        break
      case Push.control:
        listener.control(entry[1] as ControlMessage)
        break
      case Push.describe:
        this.outbox.push([0, Op.described, entry[1], listener.describe()])
        break
    }
  }

  private readonly lost = (): void => {
    this.connected = false
    this.listener?.status(false)
    for (const pending of this.pending.values()) pending.reject(new BrokerUnavailableError('the primary process is gone'))
    this.pending.clear()
  }
}
