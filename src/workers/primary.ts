// WORKERS > 1: the standalone server as N processes on one port (node:cluster), which behave as one
// server. This is the primary: it builds no app and serves no connection. It forks the workers (each
// runs src/server.ts as a node of its own, `<NODE_ID>-<i>`), holds the one in-memory broker they
// share when there is no Redis (with Redis each worker is a Redis node like any other), aggregates
// their metrics for GET /metrics, restarts a worker that dies, and on SIGTERM/SIGINT drains them all
// before it exits.
import cluster, { type Worker } from 'node:cluster'
import { fileURLToPath } from 'node:url'
import type { Config } from '../config.js'
import { IpcBrokerHost } from '../core/brokers/ipc-host.js'
import { WORKER_ENV, type IpcEndpoint } from '../core/brokers/ipc-protocol.js'
import { primaryRegistry, serveClusterMetrics } from './cluster-metrics.js'
import { primaryLog } from './primary-log.js'

/**
 * The IPC channel's encoding: node's default, 'json'. 'advanced' (V8's serializer) measured 40% more
 * CPU per publish round trip (a batch of one: 54 µs against 38 µs on the sending side; of eight:
 * 14 against 11 µs per entry), the messages being small arrays of short strings; the fan-out sends
 * one message per publication and worker, whichever the encoding (BENCHMARKS.md, "Workers").
 */
const SERIALIZATION = 'json'
/**
 * Worker -> primary: `{ type: STARTUP_FAILED, line }`, the one line saying why the worker cannot start
 * (src/server.ts): the primary prints it, once however many workers fail alike, and stops the server.
 */
const STARTUP_FAILED = 'fastify-realtime:startup-failed'
/** How long the primary waits for a worker that exited before it listened to deliver its line. */
const LINE_WAIT_MS = 1000
/**
 * A worker that dies sooner than this after its start is restarted after a delay, not at once: the
 * first such death of a slot after RESTART_DELAY_MS, each consecutive one twice as long as the one
 * before, at most MAX_RESTART_DELAY_MS. A worker that keeps dying at start (a dependency gone, a bad
 * deploy) would otherwise be forked every second for ever, each fork a start-up's CPU and an error
 * line. One that lived QUICK_DEATH_MS is restarted at once, and its slot's count starts over.
 */
const QUICK_DEATH_MS = 5000
const RESTART_DELAY_MS = 1000
const MAX_RESTART_DELAY_MS = 30_000

interface Slot {
  /** 1..N: the worker's node id is `<NODE_ID>-<index>`. */
  index: number
  worker?: Worker
  startedAt: number
  listened: boolean
  /** The line the worker's start-up failed with (STARTUP_FAILED), if it sent one. */
  failure?: string
  /** Consecutive quick deaths (QUICK_DEATH_MS) of this slot's workers: what its restart delay doubles with. */
  quickDeaths: number
}

/**
 * In a worker: hands the line saying why this worker cannot start to the primary, and exits 1 once
 * it is sent (the primary prints it). Never resolves. Should the channel be gone, prints it itself.
 */
export async function reportStartupFailure (line: string): Promise<never> {
  return await new Promise<never>(() => {
    process.send?.({ type: STARTUP_FAILED, line }, undefined, {}, error => {
      if (error !== null) process.stderr.write(`${line}\n`)
      process.exit(1)
    })
  })
}

function isStartupFailure (message: unknown): message is { type: string, line: string } {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === STARTUP_FAILED &&
    typeof (message as { line?: unknown }).line === 'string'
}

export async function runPrimary (config: Config): Promise<void> {
  const log = primaryLog(config)
  const shared = config.redisUrl === undefined && config.redisClusterNodes === undefined
  // The workers run the server's entry (src/server.ts), whatever started the primary (the bin script).
  cluster.setupPrimary({ exec: fileURLToPath(new URL('../server.js', import.meta.url)), args: [], serialization: SERIALIZATION })
  const { historySize, historyTtl, historyMemoryLimit } = config
  const host = shared ? new IpcBrokerHost({ historySize, historyTtl, historyMemoryLimit }) : undefined
  await host?.start()
  if (config.metrics) serveClusterMetrics(host === undefined ? undefined : primaryRegistry(() => host.heldBytes))

  const slots: Slot[] = Array.from({ length: config.workers }, (_, i) => ({ index: i + 1, startedAt: 0, listened: false, quickDeaths: 0 }))
  let started = false
  let draining = false
  let drainFailed = false
  let failing = false

  function fork (slot: Slot): void {
    const worker = cluster.fork({ NODE_ID: `${config.nodeId}-${slot.index}`, [WORKER_ENV]: String(slot.index) })
    slot.worker = worker
    slot.startedAt = Date.now()
    slot.listened = false
    slot.failure = undefined
    // The ChildProcess, not the cluster Worker: it has `connected`, and its send takes a callback.
    const detach = host?.attach(worker.process as unknown as IpcEndpoint)
    worker.once('listening', address => {
      slot.listened = true
      worker.off('message', onMessage)
      if (!started && slots.every(s => s.listened)) {
        started = true
        log.info({ workers: config.workers, broker: shared ? 'memory (held by the primary)' : 'redis (each worker a node)', port: address.port },
          `${config.workers} workers listening on ${config.host}:${address.port}`)
      }
    })
    // Listened only until the worker listens: the channel's hot traffic (brokers/ipc-host.ts) need not pass here.
    const onMessage = (message: unknown): void => { if (isStartupFailure(message)) slot.failure = message.line }
    worker.on('message', onMessage)
    worker.once('exit', (code, signal) => {
      detach?.()
      slot.worker = undefined
      // The failure's line may still be on its way: it arrives before the channel's end.
      if (!slot.listened && worker.isConnected()) {
        const then = (): void => { clearTimeout(timer); worker.off('disconnect', then); exited(slot, code, signal) }
        const timer = setTimeout(then, LINE_WAIT_MS)
        worker.once('disconnect', then)
      } else exited(slot, code, signal)
    })
  }

  /**
   * A worker failed before the server started (a port in use, a key that is not one, Redis refusing
   * us): the server cannot start as configured. Its reason, printed once (the other workers, failing
   * alike, are stopped before they add theirs), and exit 1; nothing is restarted.
   */
  function startFailed (slot: Slot, code: number | null, signal: string | null): void {
    if (failing) return
    failing = true
    for (const other of slots) other.worker?.process.kill('SIGKILL')
    const reason = `worker ${config.nodeId}-${slot.index} exited (${signal ?? `code ${String(code)}`}) before it listened`
    process.stderr.write(`${slot.failure ?? `fastify-realtime: cannot start: ${reason}`}\n`)
    process.exit(1)
  }

  function exited (slot: Slot, code: number | null, signal: string | null): void {
    const node = `${config.nodeId}-${slot.index}`
    if (draining) {
      if (code !== 0) drainFailed = true
      if (slots.every(s => s.worker === undefined)) void finish()
      return
    }
    if (!started && !slot.listened) return startFailed(slot, code, signal)
    // 1 s, 2 s, 4 s, ... 30 s for consecutive quick deaths; at once (0) for a worker that lived.
    slot.quickDeaths = Date.now() - slot.startedAt < QUICK_DEATH_MS ? slot.quickDeaths + 1 : 0
    const restartInMs = slot.quickDeaths === 0 ? 0 : Math.min(RESTART_DELAY_MS * 2 ** (slot.quickDeaths - 1), MAX_RESTART_DELAY_MS)
    // Code 0 is no crash: the worker drained on a SIGTERM or SIGINT sent to it rather than to the
    // primary, or node:cluster ended it when its IPC channel closed (it logs a warning first).
    const hint = code === 0 ? 'exit code 0: a SIGTERM or SIGINT sent to the worker itself (signal the primary only), or its IPC channel to the primary closed' : undefined
    log.error({ worker: node, code, signal, reason: slot.failure, hint, restartInMs }, `worker ${node} exited unexpectedly: restarting it; its connections were lost and their clients reconnect and recover`)
    // A drain that starts meanwhile cancels the restart: the drained server must not fork again.
    if (restartInMs > 0) setTimeout(() => { if (!draining) fork(slot) }, restartInMs)
    else fork(slot)
  }

  async function finish (): Promise<void> {
    await host?.close()
    log.info({}, 'closed')
    process.exit(drainFailed ? 1 : 0)
  }

  function drain (signal: string): void {
    if (draining) return
    draining = true
    log.info({ signal, timeoutMs: config.shutdownTimeout, workers: config.workers }, 'draining every worker')
    // Each worker drains as a single node does (close 1001, at most SHUTDOWN_TIMEOUT) and exits.
    for (const slot of slots) slot.worker?.process.kill('SIGTERM')
    setTimeout(() => {
      log.error({}, 'the workers did not finish draining within SHUTDOWN_TIMEOUT')
      for (const slot of slots) slot.worker?.process.kill('SIGKILL')
      process.exit(1)
    }, config.shutdownTimeout + 2000).unref()
    if (slots.every(s => s.worker === undefined)) void finish()
  }
  process.once('SIGTERM', () => { drain('SIGTERM') })
  process.once('SIGINT', () => { drain('SIGINT') })

  for (const slot of slots) fork(slot)
}
