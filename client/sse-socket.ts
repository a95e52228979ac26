// The SSE transport, behind the part of the WebSocket interface the client uses (socket.ts): it takes
// the client's frames and answers with the server's, so that requests, recovery, liveness and refresh
// are the same code on both transports. What it receives comes from `GET <base>/sse?topic=...`, read
// with fetch (EventSource cannot send headers and Node 20 has none); what it sends goes to the HTTP API.
//
// A stream's topics are fixed when it opens, so a change of subscriptions (subscribe, unsubscribe) or of
// token (refresh) reopens it, once per tick, with every topic and a cursor of the subscriptions'
// positions: the server replays what the change made us miss, and the Subscription drops what it already
// has. With no subscription there is no stream at all (docs/client.md, "Server-sent events").
import { encodeCursor } from '../src/core/sse-cursor.js'
import type { RealtimeError } from './errors.js'
import type { ServerFrame, StreamPosition } from './frames.js'
import { apiUrl, authHeaders, callApi, httpError, type Fetch } from './http-api.js'
import { sseParser, type SseEvent } from './sse-parser.js'
import type { WebSocketLike } from './socket.js'
import { CloseCode } from '../src/core/wire.js'

/** What the transport reads of the client's subscriptions: the topics, in order, and their positions. */
export type LiveSubscriptions = ReadonlyMap<string, { position: StreamPosition | null }>

/** A stream refused for topics that no new subscription explains: reconnect and find out (see refused()). */
const POLICY = 1008

/** `exp` of a JWT, in ms; null for anything else (an API key). Used only while no stream tells us. */
function expiresAt (token: string | undefined): number | null {
  try {
    const exp = JSON.parse(atob((token ?? '').split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).exp
    return typeof exp === 'number' ? exp * 1000 : null
  } catch {
    return null
  }
}

export class SseSocket implements WebSocketLike {
  readonly protocol = ''
  onopen: ((event: unknown) => void) | null = null
  onmessage: ((event: { data: unknown }) => void) | null = null
  onclose: ((event: { code: number, reason: string }) => void) | null = null
  onerror: ((event: unknown) => void) | null = null

  /** Aborts the stream; `requests` aborts the HTTP calls in flight (on close only). */
  private stream: AbortController | null = null
  private readonly requests = new AbortController()
  /** The current stream's topics, and those of them whose `subscribed` arrived. */
  private topics: string[] = []
  private readonly subscribed = new Set<string>()
  /** The positions the current stream resumes from, per topic: the `since` of its acks. */
  private readonly since = new Map<string, StreamPosition>()
  /** Subscribe requests waiting for their topic's `subscribed`: topic -> request id. */
  private readonly waiting = new Map<string, number>()
  /** A `refresh` waiting for the welcome of the stream reopened with its token. */
  private refreshId: number | undefined
  private welcomed = false
  private reopening = false
  private ended = false

  constructor (private readonly url: string, private token: string | undefined, private readonly subscriptions: LiveSubscriptions, private readonly fetch: Fetch) {
    apiUrl(url, 'sse') // a malformed URL throws here, where the client sees it
    // After the caller has set its handlers.
    queueMicrotask(() => this.open())
  }

  send (data: string | Uint8Array): void {
    const frame = JSON.parse(String(data)) as ServerFrame
    const { id, topic } = frame
    switch (frame.type) {
      case 'subscribe':
        this.waiting.set(topic, id)
        // Already on its way in the stream being opened (a reconnect's): wait for its `subscribed`.
        if (!this.topics.includes(topic) || this.subscribed.has(topic)) this.reopen()
        break
      case 'unsubscribe':
        this.waiting.delete(topic)
        this.deliver({ type: 'ack', id })
        this.reopen()
        break
      case 'refresh':
        this.token = frame.token
        this.refreshId = id
        this.reopen()
        break
      case 'ping':
        // A stream proves itself with its heartbeat comments; without one there is nothing to check.
        if (this.stream === null) this.deliver({ type: 'pong', id })
        break
      case 'publish': this.call(id, 'api/publish', { topic, data: frame.data }); break
      case 'rpc': this.call(id, 'api/rpc', { method: frame.method, data: frame.data }); break
      case 'presence': this.call(id, `api/topics/${encodeURIComponent(topic)}/presence`); break
      case 'history': {
        const query = new URLSearchParams()
        if (frame.since !== undefined) {
          query.set('since', String(frame.since.offset))
          query.set('epoch', frame.since.epoch)
        }
        if (frame.limit !== undefined) query.set('limit', String(frame.limit))
        this.call(id, `api/topics/${encodeURIComponent(topic)}/history?${query}`)
      }
    }
  }

  /** The client lets go: nothing more is delivered, nothing stays open. */
  close (): void {
    this.ended = true
    this.stream?.abort()
    this.requests.abort()
  }

  private deliver (frame: object | string): void {
    if (!this.ended) this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) })
  }

  /** The connection is over, as a websocket's close: the client reconnects or stops by the code. */
  private end (code: number, reason: string): void {
    if (this.ended) return
    this.close()
    this.onclose?.({ code, reason })
  }

  private call (id: number, path: string, body?: unknown): void {
    callApi(this.fetch, apiUrl(this.url, path), this.token, this.requests.signal, body).then(
      answer => this.deliver({ ...answer, type: 'ack', id }),
      (error: RealtimeError) => this.deliver({ type: 'error', id, code: error.code ?? 'disconnected', message: error.message })
    )
  }

  /** One reopen per tick, however many subscriptions changed in it. */
  private reopen (): void {
    if (this.reopening) return
    this.reopening = true
    queueMicrotask(() => {
      this.reopening = false
      this.open()
    })
  }

  private open (): void {
    if (this.ended) return
    this.stream?.abort()
    this.stream = null
    this.subscribed.clear()
    this.since.clear()
    this.topics = [...this.subscriptions.keys()]
    if (this.topics.length === 0) {
      // No stream to say who we are: the client still needs its welcome, and a refresh its answer.
      if (!this.welcomed) this.welcomeLocally()
      return this.answerRefresh(expiresAt(this.token))
    }
    const url = apiUrl(this.url, 'sse')
    const positions = this.topics.map(topic => this.subscriptions.get(topic)?.position ?? undefined)
    this.topics.forEach((topic, i) => {
      url.searchParams.append('topic', topic)
      if (positions[i] !== undefined) this.since.set(topic, positions[i] as StreamPosition)
    })
    const headers: Record<string, string> = { accept: 'text/event-stream', ...authHeaders(this.token) }
    if (this.since.size > 0) headers['last-event-id'] = encodeCursor(positions)
    const stream = this.stream = new AbortController()
    this.read(url, headers, stream.signal).catch((error: Error) => {
      if (!stream.signal.aborted) this.end(CloseCode.abnormal, `the event stream broke off (${error.message})`)
    })
  }

  private async read (url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<void> {
    const response = await this.fetch(url, { headers, signal, cache: 'no-store' })
    if (!response.ok) {
      const error = await httpError(response)
      if (!signal.aborted) this.refused(response.status, error)
      return
    }
    const feed = sseParser(
      event => { if (!signal.aborted) this.handleEvent(event) },
      // The heartbeat: the client counts any frame as a sign of life.
      () => { if (!signal.aborted) this.deliver({ type: 'heartbeat' }) }
    )
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    const decoder = new TextDecoder()
    for (;;) {
      const { done, value } = await reader.read()
      if (signal.aborted) return
      if (done) return this.end(CloseCode.abnormal, 'the event stream ended without a close event')
      feed(decoder.decode(value, { stream: true }))
    }
  }

  private handleEvent ({ event, data }: SseEvent): void {
    switch (event) {
      case 'message': case 'join': case 'leave':
        this.deliver(data)
        break
      case 'welcome': {
        // The first one connects the client; a reopened stream's only updates client.welcome.
        this.welcomed = true
        this.deliver(data)
        this.answerRefresh(JSON.parse(data).expiresAt)
        break
      }
      case 'subscribed': {
        const ack = JSON.parse(data)
        const { topic } = ack
        if (!this.topics.includes(topic)) return
        this.subscribed.add(topic)
        const id = this.waiting.get(topic)
        this.waiting.delete(topic)
        // A subscribe's ack, or, for a subscription carried over into a reopened stream, a frame of
        // our own that tells it whether the stream resumed it (recovered) or continuity was lost.
        this.deliver(id === undefined ? { ...ack, type: 'subscribed', since: this.since.get(topic) } : { ...ack, type: 'ack', id })
        break
      }
      case 'close': {
        const { code, reason } = JSON.parse(data)
        this.end(code, reason)
      }
    }
  }

  /** A welcome of our own, for a connection without a stream (docs/client.md). */
  private welcomeLocally (): void {
    this.welcomed = true
    this.deliver({ type: 'welcome', connectionId: '', user: null, node: '', heartbeat: 25000, expiresAt: expiresAt(this.token) })
  }

  private answerRefresh (expiresAt: number | null): void {
    if (this.refreshId !== undefined) this.deliver({ type: 'ack', id: this.refreshId, expiresAt })
    this.refreshId = undefined
  }

  /**
   * The server refused the stream (an HTTP error, before any event). A topic it will not serve (400,
   * 403): the one its message names, else every topic just subscribed; when those are all waiting for
   * their subscribe's answer, they are refused and the stream reopens without them. Anything else ends
   * the connection as the websocket's refusal=close would: 4000 + the status (4401: token refused).
   */
  private refused (status: number, error: RealtimeError): void {
    if (this.refreshId !== undefined) this.deliver({ type: 'error', id: this.refreshId, code: error.code, message: error.message })
    this.refreshId = undefined
    if (status === 400 || status === 403) {
      // The server names a forbidden topic ("x"), and an invalid one by its place (querystring/topic/2).
      const place = /topic\/(\d+)/.exec(error.message)
      const named = this.topics.filter((topic, i) => error.message.includes(`"${topic}"`) || place?.[1] === String(i))
      const culprits = named.length > 0 ? named : this.topics.filter(topic => this.waiting.has(topic))
      if (culprits.length > 0 && culprits.every(topic => this.waiting.has(topic))) {
        for (const topic of culprits) {
          this.deliver({ type: 'error', id: this.waiting.get(topic), code: error.code, message: error.message })
          this.waiting.delete(topic)
        }
        return this.reopen()
      }
      if (!this.welcomed) {
        // A reconnect's stream: no subscribe was sent yet. Welcome the client, which then subscribes
        // each topic: those are new, and the next refusal names the culprit.
        this.topics = []
        return this.welcomeLocally()
      }
      return this.end(POLICY, error.message)
    }
    this.end(4000 + status, error.message)
  }
}
