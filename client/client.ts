// RealtimeClient: one connection to a fastify-realtime server, kept alive for the application: a
// websocket, or a server-sent-events stream with the HTTP API where websockets cannot open
// (sse-socket.ts). It reconnects with backoff, resubscribes every topic from its last position so that
// nothing is lost or repeated, refreshes the token before it expires, and notices a dead server by itself.
// What it does, and every choice it makes, is written down in docs/client.md.
import { backoffDelay } from './backoff.js'
import { Emitter } from './emitter.js'
import { ClientErrorCode, RealtimeError } from './errors.js'
import type { Fetch } from './http-api.js'
import type { HistoryResult, Message, PresenceResult, PublishResult, ServerFrame, StreamPosition, Welcome } from './frames.js'
import { decodeFrame, encodeFrame, openSocket, type MsgpackCodec, type WebSocketConstructor, type WebSocketLike } from './socket.js'
import { SseSocket } from './sse-socket.js'
import { Subscription } from './subscription.js'
import type { RpcMap, RpcParams, RpcResult } from '../src/core/rpc-types.js'
import { CloseCode, type ErrorCode } from '../src/core/wire.js'
import type { TopicMap, TopicPayload } from '../src/core/topic-schemas-types.js'

/** An explicit `Data` type argument wins; without one (never), the topic map's type for the topic. */
type DataOf<Data, Declared> = [Data] extends [never] ? Declared : Data

export type ClientState = 'disconnected' | 'connecting' | 'connected' | 'closed'

export type Transport = 'websocket' | 'sse'

export interface ClientOptions {
  /** The JWT to connect with. */
  token?: string
  /** Called before each (re)connect and before the token expires (then sent as `refresh`). */
  getToken?: () => string | Promise<string>
  /** The WebSocket constructor (Node 20: `import WebSocket from 'ws'`); default `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor
  /** ms; the first reconnect waits up to this long (full jitter), doubling per failed attempt. Default 500. */
  minReconnectDelay?: number
  /** ms; the longest reconnect delay. Default 20000. */
  maxReconnectDelay?: number
  /** ms for each request (subscribe, publish, history, presence, refresh, ping, rpc). Default 5000. */
  timeout?: number
  /**
   * Speak MessagePack instead of JSON (subprotocol `realtime.msgpack`) with this codec, e.g.
   * `{ encode, decode }` from `@msgpack/msgpack`; JSON when the server does not agree. docs/client.md
   */
  msgpack?: MsgpackCodec
  /**
   * The transports the client may use: default ['websocket', 'sse'], the websocket first and server-sent
   * events when websockets cannot open; ['sse'] uses SSE only (no WebSocket needed); ['websocket'] never
   * falls back. The order does not matter: a listed websocket is always tried first. docs/client.md
   */
  transports?: Transport[]
  /** The `fetch` of the SSE transport; default `globalThis.fetch`. */
  fetch?: Fetch
}

export interface DisconnectedEvent {
  code: number
  reason: string
  /** Whether the client will reconnect by itself; false ends in state 'closed'. */
  reconnect: boolean
}

export interface ClientEvents {
  state: ClientState
  connected: Welcome
  disconnected: DisconnectedEvent
  error: RealtimeError
}

/** Websocket attempts in a row that never opened after which the client falls back to SSE. */
const FALLBACK_AFTER = 2

/** Subscribe refusals that will not change by asking again: the subscription is removed. */
const FINAL_SUBSCRIBE_ERRORS: ReadonlySet<string> = new Set<ErrorCode>(['bad_request', 'forbidden', 'unauthorized', 'limit_exceeded', 'not_found', 'too_large'])

interface PendingRequest {
  frame: Record<string, unknown>
  /** Sent on the current socket (else it waits for the next connection). */
  sent: boolean
  timer: ReturnType<typeof setTimeout>
  resolve: (ack: ServerFrame) => void
  reject: (error: RealtimeError) => void
}

interface NetworkEvents {
  addEventListener?: (type: string, listener: () => void) => void
  removeEventListener?: (type: string, listener: () => void) => void
  navigator?: { onLine?: boolean }
}
const network = globalThis as NetworkEvents

const ignore = (): void => {}

/**
 * `Topics` (optional) maps declared topic patterns to their data types, e.g.
 * `new RealtimeClient<{ 'orders.{id}': Order }>(url)`: subscribe('orders.42') then gives Message<Order>,
 * and publish('orders.42', data) takes an Order only (docs/topics.md). `Methods` (optional) types the
 * RPC methods the same way, name -> { params, result } (docs/hooks.md).
 */
export class RealtimeClient<Topics extends TopicMap = TopicMap, Methods extends RpcMap = RpcMap> extends Emitter<ClientEvents> {
  state: ClientState = 'disconnected'
  /** The current connection's welcome frame (null before the first). */
  welcome: Welcome | null = null

  private readonly WebSocket: WebSocketConstructor | undefined
  private readonly fetch: Fetch
  private readonly canFallBack: boolean
  /** On SSE: from the start with transports ['sse'] or without a WebSocket, else after a fallback. */
  private sse: boolean
  /** The current socket opened (a websocket's `open`): what tells a blocked upgrade from a refusal. */
  private opened = false
  /** Websocket attempts in a row that never opened, since connect(). */
  private failedOpens = 0
  /** A websocket reached its welcome since connect(): later failures are outages, not a blocked upgrade. */
  private websocketWorked = false
  private readonly minReconnectDelay: number
  private readonly maxReconnectDelay: number
  private readonly timeout: number
  private readonly subscriptions = new Map<string, Subscription<any>>()
  private readonly pending = new Map<number, PendingRequest>()
  /** Subscribes waiting to be asked again after a passing error (unavailable, rate_limited). */
  private readonly retryTimers = new Map<Subscription<any>, ReturnType<typeof setTimeout>>()
  private connectWaiters: Array<{ resolve: (welcome: Welcome) => void, reject: (error: RealtimeError) => void }> = []
  private socket: WebSocketLike | null = null
  private nextId = 1
  /** Failed connection attempts since the last welcome: the backoff exponent. */
  private attempts = 0
  /** Refused upgrades (4401) in a row: the second one, even with a fresh token, is final. */
  private refusals = 0
  /** When the last frame arrived (ms): the dead-server check measures silence from it. */
  private lastSeen = 0
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined
  private livenessTimer: ReturnType<typeof setTimeout> | undefined
  private refreshTimer: ReturnType<typeof setTimeout> | undefined
  /** Set while offline: the reconnect waits for the browser's 'online' event. */
  private waitingForNetwork = false

  constructor (readonly url: string, private readonly options: ClientOptions = {}) {
    super()
    const transports = options.transports ?? ['websocket', 'sse']
    this.WebSocket = transports.includes('websocket') ? options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket : undefined
    this.canFallBack = transports.includes('sse')
    if (this.WebSocket === undefined && !this.canFallBack) {
      throw new TypeError('no WebSocket available: pass the `WebSocket` option (on Node 20: import WebSocket from "ws")')
    }
    this.sse = this.WebSocket === undefined
    // A bound global: a browser's fetch called as another object's method throws "Illegal invocation".
    this.fetch = options.fetch ?? (async (input, init) => await fetch(input, init))
    this.minReconnectDelay = options.minReconnectDelay ?? 500
    this.maxReconnectDelay = options.maxReconnectDelay ?? 20000
    this.timeout = options.timeout ?? 5000
  }

  /** Connects (again, after close()); resolves on the next welcome, rejects if the client stops first. */
  connect (): Promise<Welcome> {
    if (this.state === 'connected' && this.welcome !== null) return Promise.resolve(this.welcome)
    const connected = new Promise<Welcome>((resolve, reject) => this.connectWaiters.push({ resolve, reject }))
    // Callers that do not await connect() must not get an unhandled rejection: 'disconnected' tells them.
    connected.catch(() => {})
    if (this.state !== 'connecting') {
      if (this.state === 'closed') {
        this.setState('disconnected')
        // A connect() after close() tries the websocket first again: a fallback lasts until close().
        this.sse = this.WebSocket === undefined
        this.failedOpens = 0
        this.websocketWorked = false
      }
      network.addEventListener?.('online', this.onOnline)
      this.openNow()
    }
    return connected
  }

  /** The transport of the current connection; null while not connected. */
  get transport (): Transport | null {
    return this.state !== 'connected' ? null : this.sse ? 'sse' : 'websocket'
  }

  /** Follows `topic`; `since` resumes from a stored position (e.g. after a page reload). */
  subscribe<Data = never, T extends string = string> (topic: T, options: { since?: StreamPosition } = {}): Subscription<DataOf<Data, TopicPayload<Topics, T>>> {
    if (this.subscriptions.has(topic)) throw new RealtimeError('bad_request', `already subscribed to "${topic}"`)
    const subscription = new Subscription<DataOf<Data, TopicPayload<Topics, T>>>(topic, this, options.since)
    this.subscriptions.set(topic, subscription)
    if (this.state === 'connected') this.sendSubscribe(subscription)
    return subscription
  }

  async publish<T extends string> (topic: T, data: TopicPayload<Topics, T>): Promise<PublishResult> {
    const ack = await this.request({ type: 'publish', topic, data })
    return { topic: ack.topic, epoch: ack.epoch, offset: ack.offset }
  }

  async history<Data = never, T extends string = string> (topic: T, options: { since?: StreamPosition, limit?: number } = {}): Promise<HistoryResult<DataOf<Data, TopicPayload<Topics, T>>>> {
    const ack = await this.request({ type: 'history', topic, since: options.since, limit: options.limit })
    return { epoch: ack.epoch, offset: ack.offset, publications: ack.messages }
  }

  async presence (topic: string): Promise<PresenceResult> {
    const ack = await this.request({ type: 'presence', topic })
    return { connections: ack.connections, users: ack.users }
  }

  /**
   * Calls the server's RPC method `method` with `data` and resolves with its result; rejects with a
   * RealtimeError whose `code` is the server's (`not_found`, `bad_request`, `forbidden`, `internal`...)
   * or `timeout` after `options.timeout` ms (default: the client's `timeout`). Like every request, one
   * made while disconnected is sent once connected; one whose connection drops rejects with
   * `disconnected`, since the method may or may not have run.
   */
  async rpc<K extends string> (method: K, data?: RpcParams<Methods, K>, options: { timeout?: number } = {}): Promise<RpcResult<Methods, K>> {
    const ack = await this.request({ type: 'rpc', method, data }, options.timeout)
    return ack.data
  }

  /** Closes for good (until connect() is called again): no reconnect, no timer left behind. */
  close (): void {
    if (this.state === 'closed') return
    const hadSocket = this.socket !== null
    this.abandonSocket(true)
    this.stop(new RealtimeError(ClientErrorCode.closed, 'the client was closed'))
    if (hadSocket) this.emit('disconnected', { code: CloseCode.normal, reason: 'client closed', reconnect: false })
  }

  /** @internal Subscription.unsubscribe(). */
  removeSubscription (subscription: Subscription<any>): void {
    if (this.subscriptions.get(subscription.topic) !== subscription) return
    this.subscriptions.delete(subscription.topic)
    this.clearRetry(subscription)
    // The reply does not matter: the subscription is gone on our side whatever the server says (an
    // error, when a refused or retried subscribe left nothing to unsubscribe, is expected, not news).
    if (this.state === 'connected') this.ask({ type: 'unsubscribe', topic: subscription.topic }, ignore, ignore)
  }

  // ---- requests ----

  /** Sends `frame` with a fresh id now, or on the next connection; settles on its ack or error. */
  private async request (frame: Record<string, unknown>, timeout = this.timeout): Promise<ServerFrame> {
    return await new Promise((resolve, reject) => this.ask(frame, resolve, reject, timeout))
  }

  /**
   * The callback form of request(). The subscribe ack must be handled the moment it arrives: the
   * replay that follows it often comes in the same TCP read, before any promise callback would run.
   */
  private ask (frame: Record<string, unknown>, resolve: (ack: ServerFrame) => void, reject: (error: RealtimeError) => void, timeout = this.timeout): void {
    if (this.state === 'closed') return reject(new RealtimeError(ClientErrorCode.closed, 'the client is closed'))
    const id = this.nextId++
    const timer = setTimeout(() => {
      this.pending.delete(id)
      reject(new RealtimeError(ClientErrorCode.timeout, `no reply to ${String(frame.type)} within ${timeout} ms`))
    }, timeout)
    const request: PendingRequest = { frame: { ...frame, id }, sent: false, timer, resolve, reject }
    this.pending.set(id, request)
    if (this.state === 'connected') this.sendRequest(request)
  }

  private sendRequest (request: PendingRequest): void {
    request.sent = true
    this.send(request.frame)
  }

  private send (frame: object): void {
    if (this.socket !== null) this.socket.send(encodeFrame(this.socket, frame, this.options.msgpack))
  }

  private sendSubscribe (subscription: Subscription<any>): void {
    const frame = subscription.subscribeFrame()
    this.ask(frame, ack => subscription.handleAck(ack, frame.since), error => this.subscribeFailed(subscription, error))
  }

  private subscribeFailed (subscription: Subscription<any>, error: RealtimeError): void {
    if (this.subscriptions.get(subscription.topic) !== subscription) return
    if (error.code === ClientErrorCode.disconnected || error.code === ClientErrorCode.closed) return // resent on the next welcome
    if (FINAL_SUBSCRIBE_ERRORS.has(error.code)) {
      this.subscriptions.delete(subscription.topic)
      subscription.handleRefusal(error)
      return
    }
    subscription.reportError(error)
    if (error.code === ClientErrorCode.timeout) {
      // The server did not answer in time: whether it subscribed us is unknown. A new connection
      // resubscribes everything from known positions, which is exact.
      this.dropSocket(CloseCode.abnormal, 'subscribe timed out')
      return
    }
    // unavailable, rate_limited, internal: passing conditions; ask again after a backoff delay.
    this.retryTimers.set(subscription, setTimeout(() => {
      this.retryTimers.delete(subscription)
      if (this.state === 'connected' && this.subscriptions.get(subscription.topic) === subscription) this.sendSubscribe(subscription)
    }, this.minReconnectDelay + backoffDelay(1, this.minReconnectDelay, this.maxReconnectDelay)))
  }

  private clearRetry (subscription: Subscription<any>): void {
    clearTimeout(this.retryTimers.get(subscription))
    this.retryTimers.delete(subscription)
  }

  // ---- connection lifecycle ----

  private setState (state: ClientState): void {
    if (this.state === state) return
    this.state = state
    this.emit('state', state)
  }

  private openNow (): void {
    clearTimeout(this.reconnectTimer)
    this.reconnectTimer = undefined
    this.waitingForNetwork = false
    this.setState('connecting')
    const getToken = this.options.getToken
    if (getToken === undefined) return this.openSocket(this.options.token)
    Promise.resolve().then(getToken).then(
      token => { if (this.state === 'connecting' && this.socket === null) this.openSocket(token) },
      (error: unknown) => {
        if (this.state !== 'connecting') return
        this.emit('error', new RealtimeError('unauthorized', `getToken failed: ${(error as Error)?.message ?? String(error)}`))
        this.setState('disconnected')
        this.scheduleReconnect()
      }
    )
  }

  private openSocket (token: string | undefined): void {
    let socket: WebSocketLike
    this.opened = false
    try {
      socket = this.sse
        ? new SseSocket(this.url, token, this.subscriptions, this.fetch)
        : openSocket(this.WebSocket as WebSocketConstructor, this.url, token, this.options.msgpack)
    } catch (error) {
      // A constructor that throws (a page's CSP, a stub): SSE may still work.
      if (!this.sse && this.canFallBack) {
        this.sse = true
        return this.openSocket(token)
      }
      // A malformed URL: reconnecting will not fix it.
      this.emit('error', new RealtimeError('bad_request', (error as Error).message))
      this.stop(new RealtimeError(ClientErrorCode.closed, (error as Error).message))
      return
    }
    this.socket = socket
    socket.onopen = () => { this.opened = true }
    socket.onmessage = event => { if (socket === this.socket) this.handleFrame(event.data) }
    socket.onclose = event => { if (socket === this.socket) this.handleClose(event.code, event.reason) }
    // A failed socket always closes too; the close says what happened.
    socket.onerror = () => {}
    // A server that accepts the connection and never answers (stalled, or a balancer still sending to
    // it) would keep the client connecting forever: no welcome within `timeout`, try again.
    this.livenessTimer = setTimeout(() => this.dropSocket(CloseCode.abnormal, 'no welcome from the server'), this.timeout)
  }

  private handleFrame (data: unknown): void {
    this.lastSeen = Date.now()
    let frame: ServerFrame
    try {
      frame = decodeFrame(data, this.options.msgpack) as ServerFrame
    } catch {
      this.emit('error', new RealtimeError('bad_request', 'the server sent a frame that could not be decoded'))
      return
    }
    switch (frame.type) {
      case 'message': this.subscriptions.get(frame.topic)?.handleMessage(frame as Message<any>); break
      case 'ack': case 'error': this.handleReply(frame); break
      case 'join': case 'leave': this.subscriptions.get(frame.topic)?.handlePresence(frame.type, frame as any); break
      case 'welcome': this.handleWelcome(frame as Welcome & ServerFrame); break
      // SSE: a subscription carried over into a reopened stream, resumed or not (sse-socket.ts).
      case 'subscribed': this.subscriptions.get(frame.topic)?.handleAck(frame, frame.since); break
      // 'pong' (and anything newer) only proves that the server is alive: lastSeen is set.
    }
  }

  private handleReply (frame: ServerFrame): void {
    const request = this.pending.get(frame.id)
    if (request === undefined) {
      if (frame.type === 'error') this.emit('error', new RealtimeError(frame.code, frame.message))
      return
    }
    this.pending.delete(frame.id)
    clearTimeout(request.timer)
    if (frame.type === 'ack') request.resolve(frame)
    else request.reject(new RealtimeError(frame.code, frame.message))
  }

  private handleWelcome (welcome: Welcome & ServerFrame): void {
    const { type, ...fields } = welcome
    const reopened = this.state === 'connected'
    this.welcome = fields
    // A reopened SSE stream (new topics, a fresh token): the same connection as far as the app goes;
    // its heartbeat may differ from the last one's (or from the one the client assumed without a stream).
    if (reopened) {
      clearTimeout(this.livenessTimer)
      return this.watchLiveness()
    }
    if (!this.sse) this.websocketWorked = true
    this.attempts = 0
    this.refusals = 0
    this.setState('connected')
    clearTimeout(this.livenessTimer) // the welcome wait of openSocket()
    this.watchLiveness()
    this.scheduleRefresh(welcome.expiresAt)
    for (const subscription of this.subscriptions.values()) this.sendSubscribe(subscription)
    for (const request of this.pending.values()) if (!request.sent) this.sendRequest(request)
    const waiters = this.connectWaiters
    this.connectWaiters = []
    for (const waiter of waiters) waiter.resolve(this.welcome)
    this.emit('connected', this.welcome)
  }

  private handleClose (code: number, reason: string): void {
    this.socket = null
    this.clearConnectionTimers()
    for (const [id, request] of this.pending) {
      if (!request.sent) continue
      this.pending.delete(id)
      clearTimeout(request.timer)
      request.reject(new RealtimeError(ClientErrorCode.disconnected, `the connection closed (${code}) before the reply`))
    }
    for (const subscription of this.subscriptions.values()) {
      // The next welcome resubscribes everything: a retry left pending would subscribe a second time
      // on that connection, and the server's bad_request would then remove the subscription.
      this.clearRetry(subscription)
      subscription.handleDisconnect()
    }

    if (code === CloseCode.refusedUnauthorized) this.refusals++
    if (this.opened) this.failedOpens = 0
    // A websocket that cannot open (a proxy that blocks the upgrade, a closed port) and never opened
    // since connect(): after FALLBACK_AFTER such attempts in a row, SSE until close() (docs/client.md).
    if (!this.sse && !this.opened && code === CloseCode.abnormal && this.canFallBack && !this.websocketWorked &&
      ++this.failedOpens >= FALLBACK_AFTER) this.sse = true
    // 4003 (a revoked token, the user disconnected by the admin API) and 4403 (an origin refused) end
    // the client; 4401 (a token refused) does when there is no getToken to ask again, or it did not help.
    const final = code === CloseCode.forbidden || code === CloseCode.refusedForbidden ||
      (code === CloseCode.refusedUnauthorized && (this.options.getToken === undefined || this.refusals > 1))
    if (final) {
      this.stop(new RealtimeError(code === CloseCode.refusedUnauthorized ? 'unauthorized' : 'forbidden', reason))
      this.emit('disconnected', { code, reason, reconnect: false })
      return
    }
    this.setState('disconnected')
    this.emit('disconnected', { code, reason, reconnect: true })
    // A refused token with getToken: ask for a fresh one at once (it may simply have expired).
    if (code === CloseCode.refusedUnauthorized) this.openNow()
    else this.scheduleReconnect()
  }

  private scheduleReconnect (): void {
    if (network.navigator?.onLine === false) {
      // No point in trying while the browser knows it is offline; 'online' reconnects at once.
      this.waitingForNetwork = true
      return
    }
    const delay = backoffDelay(this.attempts++, this.minReconnectDelay, this.maxReconnectDelay)
    this.reconnectTimer = setTimeout(() => this.openNow(), delay)
  }

  private readonly onOnline = (): void => {
    if (this.state === 'disconnected' || this.waitingForNetwork) this.openNow()
  }

  /** Ends in state 'closed': nothing pending, no timer, no listener. */
  private stop (error: RealtimeError): void {
    this.setState('closed')
    this.clearConnectionTimers()
    clearTimeout(this.reconnectTimer)
    this.reconnectTimer = undefined
    this.waitingForNetwork = false
    network.removeEventListener?.('online', this.onOnline)
    for (const subscription of this.subscriptions.values()) {
      this.clearRetry(subscription)
      subscription.handleDisconnect()
    }
    for (const request of this.pending.values()) {
      clearTimeout(request.timer)
      request.reject(error)
    }
    this.pending.clear()
    const waiters = this.connectWaiters
    this.connectWaiters = []
    for (const waiter of waiters) waiter.reject(error)
  }

  /**
   * Lets go of the current socket without waiting for its close handshake: politely (a 1000 close
   * frame) when the client closes, cut at once when the server stopped answering (`ws` can; a
   * browser's socket finishes on its own).
   */
  private abandonSocket (graceful: boolean): void {
    const socket = this.socket
    if (socket === null) return
    this.socket = null
    socket.onmessage = socket.onclose = null
    const terminate = (socket as { terminate?: () => void }).terminate
    if (!graceful && typeof terminate === 'function') terminate.call(socket)
    else socket.close(CloseCode.normal)
  }

  /** Gives up on a connection that misbehaves, and reconnects as if the server had closed it. */
  private dropSocket (code: number, reason: string): void {
    if (this.socket === null) return
    this.abandonSocket(false)
    this.handleClose(code, reason)
  }

  private clearConnectionTimers (): void {
    clearTimeout(this.livenessTimer)
    clearTimeout(this.refreshTimer)
    this.livenessTimer = this.refreshTimer = undefined
  }

  // ---- a healthy connection ----

  /**
   * Dead-server detection. Browsers do not expose the server's websocket pings, so silence is all a
   * client can see: after heartbeat + timeout ms without a frame it sends `ping`, and when `timeout`
   * more pass without any frame it drops the connection and reconnects.
   */
  private watchLiveness (): void {
    const quietFor = Date.now() - this.lastSeen
    const pingAfter = (this.welcome?.heartbeat ?? 25000) + this.timeout
    let wait = pingAfter - quietFor
    if (quietFor >= pingAfter + this.timeout) return this.dropSocket(CloseCode.abnormal, 'the server did not answer a ping')
    if (wait <= 0) {
      this.send({ type: 'ping' })
      wait += this.timeout
    }
    this.livenessTimer = setTimeout(() => this.watchLiveness(), wait)
  }

  /** Refreshes ahead of expiry: a third of the remaining lifetime early, at most one minute. */
  private scheduleRefresh (expiresAt: number | null): void {
    const getToken = this.options.getToken
    if (expiresAt === null || getToken === undefined) return
    const remaining = expiresAt - Date.now()
    const socket = this.socket
    this.refreshTimer = setTimeout(() => {
      Promise.resolve().then(getToken)
        .then(async token => {
          if (this.socket !== socket) return // reconnected meanwhile, with a fresh token anyway
          const ack = await this.request({ type: 'refresh', token })
          if (this.socket === socket) this.scheduleRefresh(ack.expiresAt)
        })
        .catch((error: unknown) => {
          // The connection keeps its old token; at expiry the server closes it with 4001 and the
          // reconnect asks getToken again.
          this.emit('error', error instanceof RealtimeError ? error : new RealtimeError('unauthorized', `refresh failed: ${String(error)}`))
        })
    }, Math.max(0, remaining - Math.min(60000, remaining / 3)))
  }
}
