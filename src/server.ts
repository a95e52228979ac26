// Process entry: .env and the environment -> config, build, listen, and drain on SIGTERM/SIGINT.
// Every start-up failure ends the same way: one line on stderr that names the cause (the variable
// when there is one), exit code 1, no stack trace. Redis unreachable at start is not a failure: the
// broker starts like during an outage (/health/ready 503) and the node is ready once Redis answers.
import type { FastifyInstance } from 'fastify'
import cluster from 'node:cluster'
import { statSync } from 'node:fs'
import { buildApp } from './app.js'
import { isWorkerOfPrimary } from './core/brokers/ipc-protocol.js'
import { ConfigError, loadConfig, type Config } from './config.js'
import { registerDemoRpc } from './demo-rpc.js'
import { capConnections, openFileLimit, shedThreshold } from './fd-limit.js'
import { shedBeyond } from './socket-shedding.js'
import { reportStartupFailure, runPrimary } from './workers/primary.js'

const ENV_FILE = '.env'

/** Prints the reason on one line and exits 1: an operator needs the cause, not our stack. */
function fail (message: string): never {
  process.stderr.write(`${failureLine(message)}\n`)
  process.exit(1)
}

function failureLine (message: string): string {
  return `fastify-realtime: ${message.replace(/\s*\n\s*/g, ' ')}`
}

/**
 * fail(), for what fails once the process runs (building the app, listening). A worker (WORKERS > 1)
 * hands its line to the primary instead, which prints it once for all of them (they fail alike: one
 * configuration, one port) and stops the server; it exits once the primary has it.
 */
async function failStart (message: string): Promise<never> {
  if (!isWorkerOfPrimary()) fail(message)
  return await reportStartupFailure(failureLine(message))
}

function messageOf (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/**
 * Fills the variables that the environment does not set from ./.env. Node's loader never overrides a
 * variable that is already set, even to an empty string: the real environment wins.
 */
function loadEnvFile (): void {
  try {
    const stat = statSync(ENV_FILE, { throwIfNoEntry: false })
    if (stat === undefined) return
    // Node's own message for a directory is "Contents of '.env' should be a valid string".
    if (!stat.isFile()) throw new Error('not a file')
    process.loadEnvFile(ENV_FILE)
  } catch (err) {
    fail(`cannot read ${ENV_FILE} in ${process.cwd()}: ${messageOf(err)}`)
  }
}

function readConfig (): Config {
  try {
    return loadConfig()
  } catch (err) {
    fail(err instanceof ConfigError ? err.message : `invalid configuration: ${messageOf(err)}`)
  }
}

async function build (config: Config): Promise<FastifyInstance> {
  try {
    const app = await buildApp(config)
    if (config.demo) registerDemoRpc(app)
    // Some refusals come when the plugins get ready (open mode in production: the plugin waits for a
    // host @fastify/jwt until then): they are start-up failures too, not listen failures.
    await app.ready()
    return app
  } catch (err) {
    // A ConfigError raised while the plugins start (a JWT_PUBLIC_KEY that is not a key) already says
    // "invalid configuration: VARIABLE ..."; other errors (Redis refusing us) name their variable.
    return await failStart(err instanceof ConfigError ? err.message : `cannot start: ${messageOf(err)}`)
  }
}

/** What listen() failed on, in the operator's terms (HOST and PORT). */
function listenFailure (err: NodeJS.ErrnoException, config: Config): string {
  const where = `${config.host}:${config.port}`
  switch (err.code) {
    case 'EADDRINUSE': return `cannot listen on ${where}: the port is already in use (PORT)`
    case 'EACCES': return `cannot listen on ${where}: permission denied; ports below 1024 need privileges (PORT)`
    case 'EADDRNOTAVAIL': return `cannot listen on ${where}: ${config.host} is not an address of this machine (HOST)`
    case 'ENOTFOUND':
    case 'EAI_AGAIN': return `cannot listen on ${where}: cannot resolve ${config.host} (HOST)`
    default: return `cannot listen on ${where} (HOST, PORT): ${messageOf(err)}`
  }
}

/** One node: build, listen, drain on SIGTERM/SIGINT. With WORKERS > 1, what each worker runs. */
async function serve (configured: Config): Promise<void> {
  // MAX_CONNECTIONS must fit under the open-file limit, or the process hits EMFILE before it answers 503.
  const limit = openFileLimit()
  const cap = capConnections(configured.maxConnections, limit)
  const config: Config = { ...configured, maxConnections: cap.maxConnections }
  const app = await build(config)
  if (cap.capped !== undefined) {
    const { configured: wanted, openFileLimit: fds, headroom } = cap.capped
    app.log.warn({ maxConnections: cap.maxConnections, configured: wanted, openFileLimit: fds, headroom },
      `MAX_CONNECTIONS ${wanted} does not fit under the open-file limit ${fds} (ulimit -n): running with MAX_CONNECTIONS ${cap.maxConnections}, ${headroom} descriptors kept for everything else; raise the limit (LimitNOFILE=, ulimit -n) to allow more`)
  } else {
    app.log.info({ maxConnections: config.maxConnections, openFileLimit: limit ?? null }, 'MAX_CONNECTIONS fits under the open-file limit')
  }
  // Near the open-file limit, new connections are answered 503 instead of reset (src/socket-shedding.ts).
  if (limit !== undefined) {
    const threshold = shedThreshold(limit)
    shedBeyond(app.server, threshold)
    app.log.info({ openFileLimit: limit, shedAt: threshold }, `new connections beyond ${threshold} open ones are answered 503 at once, keeping ${limit - threshold} descriptors of the open-file limit free`)
  }

  let shuttingDown = false
  async function shutdown (signal: string): Promise<void> {
    if (shuttingDown) return
    shuttingDown = true
    app.log.info({ signal, timeoutMs: config.shutdownTimeout }, 'draining')
    // The drain itself stops at SHUTDOWN_TIMEOUT - 1s; this only catches a close that hangs.
    setTimeout(() => {
      app.log.error('shutdown did not finish within SHUTDOWN_TIMEOUT')
      process.exit(1)
    }, config.shutdownTimeout + 1000).unref()
    await app.close()
    app.log.info('closed')
    process.exit(0)
  }
  process.once('SIGTERM', () => { void shutdown('SIGTERM') })
  process.once('SIGINT', () => { void shutdown('SIGINT') })
  if (isWorkerOfPrimary()) {
    // node:cluster ends a worker whose IPC channel to the primary closes (the primary gone, or the
    // channel broken) at once, with exit code 0 and no drain (lib/internal/cluster/child.js): say so
    // first, or the exit looks like a clean one. Prepended: node's own listener exits the process.
    process.prependOnceListener('disconnect', () => {
      if (!shuttingDown) app.log.warn('the IPC channel to the primary closed: node:cluster ends this worker now (exit code 0), without draining its connections')
    })
  }

  try {
    await app.listen({ host: config.host, port: config.port })
  } catch (err) {
    await failStart(listenFailure(err as NodeJS.ErrnoException, config))
  }
}

loadEnvFile()
const configured = readConfig()
// WORKERS > 1: this process forks the workers and supervises them (src/workers/primary.ts); each
// worker runs this same file and serves as a node of its own.
if (configured.workers > 1 && cluster.isPrimary) await runPrimary(configured)
else await serve(configured)
