// Live tail, publish and presence: the page's client library connection (/client.js, loaded at run
// time, not bundled again), over server-sent events with the operator's credential in a header. A
// browser's websocket cannot carry a header: the library would put a token in the URL (?token=), and
// the API key not at all. The SSE transport reads its stream with fetch, and the page hands it a fetch
// that adds the API key or the admin token (AdminApi.fetch); its publish and presence calls go the same
// way. The server admits the API key on /sse as on the rest of the API (docs/protocol.md).
import type { Message, PresenceResult, PublishResult, RealtimeClient, RealtimeError, Subscription } from '../index.js'
import type { AdminApi } from './api.js'
import { element, formatTime, showResult } from './dom.js'

export interface ClientLibrary {
  RealtimeClient: typeof RealtimeClient
}

/** The library the server serves beside the page: <prefix>/admin/admin.js -> <prefix>/client.js. */
export async function loadClientLibrary (): Promise<ClientLibrary> {
  const url = new URL('../client.js', import.meta.url).href
  return await import(url) as ClientLibrary
}

/** The tail shows the newest messages only: a busy topic never grows the page. */
export const MAX_TAIL_LINES = 100
/** The longest data text shown per message; the rest is cut. */
const MAX_DATA_CHARS = 2000
/** Close codes after which the credential itself is refused: log in again. */
const REFUSED_CODES = new Set([4003, 4401, 4403])

export class LiveTools {
  private readonly client: RealtimeClient
  private tail: Subscription | undefined

  constructor (
    library: ClientLibrary,
    api: AdminApi,
    private readonly log: HTMLOListElement,
    private readonly state: HTMLElement,
    /** The connection ended for good because the credential was refused. */
    private readonly refused: (message: string) => void
  ) {
    this.client = new library.RealtimeClient(new URL('ws', document.baseURI).href, { transports: ['sse'], fetch: api.fetch })
    this.client.on('disconnected', event => {
      if (REFUSED_CODES.has(event.code)) return this.refused(`the live connection was refused (${event.code}): ${event.reason}`)
      if (this.tail !== undefined) showResult(this.state, 'error', `Connection lost (${event.code} ${event.reason}); ${event.reconnect ? 'reconnecting…' : 'stopped.'}`)
    })
    this.client.on('connected', () => {
      if (this.tail?.state === 'subscribed') this.showTailing(this.tail.topic)
    })
    // Without a subscription nothing opens yet: the stream starts with the first tail.
    void this.client.connect()
  }

  get tailing (): string | undefined {
    return this.tail?.topic
  }

  /** Follows `topic` (only one at a time), showing each message as it arrives. */
  startTail (topic: string): void {
    this.stopTail()
    this.log.replaceChildren()
    showResult(this.state, '', `Subscribing to ${topic}…`)
    const tail = this.tail = this.client.subscribe(topic)
    tail.on('message', message => this.show(message))
    tail.on('reset', ({ reason }) => this.notice(`continuity lost (${reason}): messages may be missing here`))
    tail.on('error', (error: RealtimeError) => {
      if (tail === this.tail && tail.state === 'unsubscribed') {
        this.tail = undefined
        showResult(this.state, 'error', `Refused: ${error.message} (${error.code})`)
      }
    })
    tail.ready().then(({ offset }) => {
      if (tail === this.tail) this.showTailing(topic, offset)
    }, () => {})
  }

  stopTail (): void {
    if (this.tail === undefined) return
    const { topic } = this.tail
    this.tail.unsubscribe()
    this.tail = undefined
    showResult(this.state, '', `Stopped tailing ${topic}.`)
  }

  async publish (topic: string, data: unknown): Promise<PublishResult> {
    return await this.client.publish(topic, data)
  }

  async presence (topic: string): Promise<PresenceResult> {
    return await this.client.presence(topic)
  }

  close (): void {
    this.tail = undefined
    this.client.close()
  }

  private showTailing (topic: string, offset?: number): void {
    showResult(this.state, 'ok', offset === undefined ? `Tailing ${topic}.` : `Tailing ${topic} from offset ${offset}: new messages appear at the top.`)
  }

  private show (message: Message): void {
    let data = JSON.stringify(message.data) ?? 'null'
    if (data.length > MAX_DATA_CHARS) data = `${data.slice(0, MAX_DATA_CHARS)}…`
    const line = element('li', '', { 'data-kind': 'message', 'data-topic': message.topic, 'data-offset': String(message.offset) })
    line.append(
      element('span', formatTime(message.ts), { class: 'muted mono' }),
      element('span', `#${message.offset}${message.from === undefined ? '' : ` ${message.from}`}`, { class: 'mono' }),
      element('span', data, { class: 'data mono' })
    )
    this.add(line)
  }

  private notice (text: string): void {
    this.add(element('li', text, { 'data-kind': 'notice' }))
  }

  private add (line: HTMLLIElement): void {
    this.log.prepend(line)
    while (this.log.children.length > MAX_TAIL_LINES) this.log.lastElementChild?.remove()
  }
}
