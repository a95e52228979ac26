// Shared test plumbing: real servers listening on port 0 and real `ws` clients.
import type { FastifyInstance } from 'fastify'
import { once } from 'node:events'
import type { Test } from 'tap'
import WebSocket from 'ws'
import { buildApp } from '../src/app.js'
import { configWith, type Config } from '../src/config.js'

export interface Server {
  app: FastifyInstance
  /** http://127.0.0.1:PORT */
  url: string
  /** ws://127.0.0.1:PORT/ws */
  wsUrl: string
}

/** Starts `app` on a free port of 127.0.0.1, closed when the test ends; resolves with http://127.0.0.1:PORT. */
export async function listen (t: Test, app: FastifyInstance): Promise<string> {
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP')
  return `http://127.0.0.1:${address.port}`
}

/** Builds and starts the standalone app on a free port; closed when the test ends. */
export async function startServer (t: Test, overrides: Partial<Config> = {}): Promise<Server> {
  const app = await buildApp(configWith({ logLevel: 'silent', port: 0, ...overrides }))
  const url = await listen(t, app)
  return { app, url, wsUrl: `${url.replace('http', 'ws')}/ws` }
}

export type Frame = Record<string, any>

/**
 * A websocket client that records every frame, so tests can wait for the next frame that matches
 * without racing the socket.
 */
export class Client {
  readonly frames: Frame[] = []
  /** The same frames as received, unparsed, to compare bytes. */
  readonly raw: string[] = []
  welcome!: Frame
  readonly closed: Promise<{ code: number, reason: string }>
  private readonly waiters = new Set<() => void>()
  private nextId = 1

  constructor (readonly ws: WebSocket) {
    ws.on('message', data => {
      this.raw.push(String(data))
      this.frames.push(JSON.parse(String(data)))
      for (const wake of this.waiters) wake()
    })
    this.closed = once(ws, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason) }))
    this.closed.then(() => { for (const wake of this.waiters) wake() }, () => {})
  }

  /** Resolves with the first recorded frame (from `from` on) matching `match`, waiting if needed. */
  async next (match: (frame: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = this.frames.find(match)
      if (found !== undefined) return found
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed while waiting; frames: ${JSON.stringify(this.frames)}`)
      if (Date.now() >= deadline) throw new Error(`no matching frame within ${timeoutMs} ms; frames: ${JSON.stringify(this.frames).slice(0, 2000)}`)
      await new Promise<void>(resolve => {
        const wake = (): void => { clearTimeout(timer); this.waiters.delete(wake); resolve() }
        const timer = setTimeout(wake, deadline - Date.now())
        this.waiters.add(wake)
      })
    }
  }

  send (frame: Frame | string): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  /** Sends a request with a fresh id and resolves with the ack or error that answers it. */
  async request (frame: Frame): Promise<Frame> {
    const id = frame.id ?? `r${this.nextId++}`
    this.send({ ...frame, id })
    return this.next(reply => reply.id === id && (reply.type === 'ack' || reply.type === 'error'))
  }

  messages (topic?: string): Frame[] {
    return this.frames.filter(frame => frame.type === 'message' && (topic === undefined || frame.topic === topic))
  }

  close (): void {
    this.ws.close()
  }
}

/** Connects, waits for `welcome`, and closes the socket when the test ends. */
/** `created` sees the socket before anything arrives on it (e.g. to count pings from the first one). */
export async function connect (t: Test, wsUrl: string, options: WebSocket.ClientOptions = {}, created?: (ws: WebSocket) => void): Promise<Client> {
  const ws = new WebSocket(wsUrl, options)
  created?.(ws)
  const client = new Client(ws)
  t.teardown(() => { if (ws.readyState !== WebSocket.CLOSED) ws.terminate() })
  await Promise.race([
    once(ws, 'open'),
    once(ws, 'unexpected-response').then(([, response]) => { throw new Error(`upgrade refused: ${response.statusCode}`) })
  ])
  client.welcome = await client.next(frame => frame.type === 'welcome')
  return client
}

/** Attempts an upgrade that should be refused and resolves with the HTTP status and body. */
export async function refusedUpgrade (wsUrl: string, options: WebSocket.ClientOptions = {}): Promise<{ status: number, body: string, headers: Record<string, unknown> }> {
  const ws = new WebSocket(wsUrl, options)
  ws.on('error', () => {})
  return new Promise((resolve, reject) => {
    ws.once('open', () => { ws.terminate(); reject(new Error('the upgrade was accepted')) })
    ws.once('unexpected-response', (_request, response) => {
      let body = ''
      response.on('data', (chunk: Buffer) => { body += String(chunk) })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body, headers: response.headers }))
    })
  })
}

export async function postJson (url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number, body: any }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body)
  })
  const text = await response.text()
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) }
}

export async function getJson (url: string, headers: Record<string, string> = {}): Promise<{ status: number, body: any }> {
  const response = await fetch(url, { headers })
  const text = await response.text()
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) }
}

/** Polls `check` until it returns true, for at most `timeoutMs`; throws naming `what` otherwise. */
export async function eventually (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000, everyMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() >= deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`)
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}

/** `promise`, or a failure naming `what` once `timeoutMs` have passed. */
export async function within<T> (promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${timeoutMs} ms`)), timeoutMs)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
