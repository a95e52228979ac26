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
import { serveClusterMetrics } from './cluster-metrics.js'
import { primaryLog } from './primary-log.js'

/**
 * The IPC channel's encoding: node's default, 'json'. 'advanced' (V8's serializer) measured 40% more
 * CPU per publish round trip (a batch of one: 54 µs against 38 µs on the sending side; of eight:
 * 14 against 11 µs per entry), the messages being small arrays of short strings; the fan-out sends
 * one message per publication and worker, whichever the encoding (BENCHMARKS.md, "Workers").
 */
const SERIALIZATION = 'json'
/** A worker that dies sooner than this after its start is restarted after RESTART_DELAY_MS, not at once. */
const QUICK_DEATH_MS = 5000
const RESTART_DELAY_MS = 1000

interface Slot {
  /** 1..N: the worker's node id is `<NODE_ID>-<index>`. */
  index: number
  worker?: Worker
  startedAt: number
  listened: boolean
}

export async function runPrimary (config: Config): Promise<void> {
  const log = primaryLog(config)
  const shared = config.redisUrl === undefined && config.redisClusterNodes === undefined
  // The workers run the server's entry (src/server.ts), whatever started the primary (the bin script).
  cluster.setupPrimary({ exec: fileURLToPath(new URL('../server.js', import.meta.url)), args: [], serialization: SERIALIZATION })
  const { historySize, historyTtl, historyMemoryLimit } = config
  const host = shared ? new IpcBrokerHost({ historySize, historyTtl, historyMemoryLimit }) : undefined
  await host?.start()
  if (config.metrics) serveClusterMetrics()

  const slots: Slot[] = Array.from({ length: config.workers }, (_, i) => ({ index: i + 1, startedAt: 0, listened: false }))
  let started = false
  let draining = false
  let drainFailed = false

  function fork (slot: Slot): void {
    const worker = cluster.fork({ NODE_ID: `${config.nodeId}-${slot.index}`, [WORKER_ENV]: String(slot.index) })
    slot.worker = worker
    slot.startedAt = Date.now()
    slot.listened = false
    // The ChildProcess, not the cluster Worker: it has `connected`, and its send takes a callback.
    const detach = host?.attach(worker.process as unknown as IpcEndpoint)
    worker.once('listening', address => {
      slot.listened = true
      if (!started && slots.every(s => s.listened)) {
        started = true
        log.info({ workers: config.workers, broker: shared ? 'memory (held by the primary)' : 'redis (each worker a node)', port: address.port },
          `${config.workers} workers listening on ${config.host}:${address.port}`)
      }
    })
    worker.once('exit', (code, signal) => {
      detach?.()
      slot.worker = undefined
      exited(slot, code, signal)
    })
  }

  function exited (slot: Slot, code: number | null, signal: string | null): void {
    const node = `${config.nodeId}-${slot.index}`
    if (draining) {
      if (code !== 0) drainFailed = true
      if (slots.every(s => s.worker === undefined)) void finish()
      return
    }
    if (!started && !slot.listened) {
      // A start-up failure (a port in use, Redis refusing us): the worker printed its reason; one
      // process failing means the server cannot start as configured.
      for (const other of slots) other.worker?.process.kill('SIGKILL')
      process.exit(1)
    }
    const quick = Date.now() - slot.startedAt < QUICK_DEATH_MS
    log.error({ worker: node, code, signal }, `worker ${node} exited unexpectedly: restarting it; its connections were lost and their clients reconnect and recover`)
    if (quick) setTimeout(() => { if (!draining) fork(slot) }, RESTART_DELAY_MS)
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
