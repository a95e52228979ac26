// A pool of client processes (bench/client-worker.mjs) holding `total` websocket connections (or SSE
// streams: wire.dialect 'sse'). The load is spread over processes because one process may hold at
// most 20000 file descriptors, and every process binds its own 127.0.0.x source address because one
// address has only ~28k ports.
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Histogram } from './histogram.mjs'
import { track } from './proc.mjs'

const WORKER = fileURLToPath(new URL('../client-worker.mjs', import.meta.url))
let nextAddress = 2

/** 127.0.0.2 .. 127.0.0.254, round robin over the whole run, so no address runs out of ports. */
function sourceAddress () {
  const address = `127.0.0.${nextAddress}`
  nextAddress = nextAddress >= 254 ? 2 : nextAddress + 1
  return address
}

export class ClientPool {
  /**
   * @param {object} options
   * @param {string} options.url websocket url, or the http url of GET /sse?topic=... with wire.dialect 'sse'
   * @param {number} options.total connections
   * @param {number} [options.perWorker] connections per process
   * @param {string} [options.topic] subscribe every connection to it
   * @param {(connection: number) => string[]} [options.topicsOf] instead: the topics of each connection (0..total-1)
   * @param {{secret: string, subPrefix: string}} [options.jwt] send an HS256 token per connection
   * @param {number} [options.concurrency] connection attempts in flight per process
   * @param {{dialect?: string, encoding?: string, deflate?: boolean}} [options.wire] see client-worker.mjs (dialect 'sse': event streams)
   */
  constructor ({ url, total, perWorker = 2500, topic, topicsOf, jwt, concurrency = 64, wire }) {
    this.options = { url, total, topic, topicsOf, jwt, concurrency, wire }
    const workers = Math.max(1, Math.ceil(total / perWorker))
    this.workers = Array.from({ length: workers }, (_, i) => {
      const count = Math.floor(total / workers) + (i < total % workers ? 1 : 0)
      return { count, localAddress: sourceAddress(), child: null, waiters: new Map(), subscribed: 0 }
    })
    this.done = new Map() // seq -> workers that saw every delivery of it
    this.doneWaiters = new Map()
  }

  async start () {
    const { jwt, topicsOf } = this.options
    let first = 0
    const firsts = this.workers.map(worker => (first += worker.count) - worker.count)
    await Promise.all(this.workers.map(async (worker, i) => {
      worker.child = track(fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
      worker.child.on('message', message => this.onMessage(worker, message))
      await this.request(worker, {
        cmd: 'prepare',
        url: this.options.url,
        count: worker.count,
        localAddress: worker.localAddress,
        topic: this.options.topic,
        topics: topicsOf === undefined ? undefined : Array.from({ length: worker.count }, (_, j) => topicsOf(firsts[i] + j)),
        // Each worker numbers its tokens from 0: the worker's index keeps every `sub` distinct.
        jwt: jwt === undefined ? undefined : { ...jwt, subPrefix: `${jwt.subPrefix}${i}-` },
        concurrency: this.options.concurrency,
        wire: this.options.wire
      }, 'prepared')
    }))
  }

  /** Opens every connection; resolves to {ok, failed, errors, ms} once all workers are done. */
  async connect (timeoutMs = 300_000) {
    const results = await Promise.all(this.workers.map(worker => this.request(worker, { cmd: 'connect' }, 'connected', timeoutMs)))
    const errors = {}
    for (const result of results) {
      for (const [error, count] of Object.entries(result.errors)) errors[error] = (errors[error] ?? 0) + count
    }
    this.workers.forEach((worker, i) => { worker.subscribed = this.options.topic === undefined ? 0 : results[i].ok })
    return {
      ok: results.reduce((sum, r) => sum + r.ok, 0),
      failed: results.reduce((sum, r) => sum + r.failed, 0),
      errors,
      ms: Math.max(...results.map(r => r.ms))
    }
  }

  /** Resolves true when every subscriber got publication `seq`, false after `timeoutMs`. */
  waitDelivered (seq, timeoutMs) {
    const needed = this.workers.filter(w => w.subscribed > 0).length
    if ((this.done.get(seq) ?? 0) >= needed) {
      this.done.delete(seq)
      return Promise.resolve(true)
    }
    return new Promise(resolve => {
      const timer = setTimeout(() => { this.doneWaiters.delete(seq); resolve(false) }, timeoutMs)
      this.doneWaiters.set(seq, { needed, resolve: ok => { clearTimeout(timer); resolve(ok) } })
    })
  }

  /** Forgets the latencies and deliveries recorded so far (after a warm-up). */
  async reset () {
    await Promise.all(this.workers.map(worker => this.request(worker, { cmd: 'reset' }, 'reset')))
  }

  /**
   * Latency histogram and delivery count over all workers (since the last reset), and over the whole
   * run: `perSocket` {messages received: connections} and `closed` {close code: connections that
   * closed after they were open}, and `pings` {100 ms slot (epoch ms / 100): heartbeat pings received} since the reset.
   */
  async report () {
    const reports = await Promise.all(this.workers.map(worker => this.request(worker, { cmd: 'report' }, 'report')))
    const histogram = new Histogram()
    for (const report of reports) histogram.merge(report.histogram)
    return {
      received: reports.reduce((sum, r) => sum + r.received, 0),
      histogram,
      bytes: reports.reduce((sum, r) => sum + (r.bytes ?? 0), 0),
      perSocket: sumCounts(reports.map(r => r.perSocket)),
      closed: sumCounts(reports.map(r => r.closed)),
      pings: sumCounts(reports.map(r => r.pings))
    }
  }

  async close () {
    await Promise.all(this.workers.map(worker => {
      const child = worker.child
      if (child === null || child.exitCode !== null || child.signalCode !== null) return undefined
      const gone = new Promise(resolve => child.once('exit', resolve))
      child.send({ cmd: 'exit' })
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      return gone.then(() => clearTimeout(timer))
    }))
  }

  onMessage (worker, message) {
    if (message.ev === 'done') {
      const count = (this.done.get(message.seq) ?? 0) + 1
      this.done.set(message.seq, count)
      const waiter = this.doneWaiters.get(message.seq)
      if (waiter !== undefined && count >= waiter.needed) {
        this.doneWaiters.delete(message.seq)
        this.done.delete(message.seq)
        waiter.resolve(true)
      }
      return
    }
    const waiter = worker.waiters.get(message.ev)
    if (waiter !== undefined) {
      worker.waiters.delete(message.ev)
      waiter(message)
    }
  }

  request (worker, message, reply, timeoutMs = 300_000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`client worker did not answer ${message.cmd} within ${timeoutMs} ms`)), timeoutMs)
      worker.waiters.set(reply, answer => { clearTimeout(timer); resolve(answer) })
      worker.child.send(message)
    })
  }
}

/** Adds up {key: count} objects. */
export function sumCounts (objects) {
  const sum = {}
  for (const object of objects) {
    for (const [key, count] of Object.entries(object ?? {})) sum[key] = (sum[key] ?? 0) + count
  }
  return sum
}
